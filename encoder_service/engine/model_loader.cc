#include "encoder_service/engine/model_loader.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/compressor.h"
#include "common/model/runtime_options.h"
#include "common/model/torch_status.h"

namespace icae::encoder {
namespace {

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool RegularFileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

absl::Status CheckRuntimeOptions(const RuntimeOptions& options) {
  return ResolveRuntime(options).status();
}

void ConfigureModelThreads(int threads) { ConfigureThreads(threads); }

absl::StatusOr<EncoderModel> LoadEncoderModel(const std::string& model_dir,
                                              const std::string& adapter_path,
                                              const RuntimeOptions& options) {
  ASSIGN_OR_RETURN(Runtime runtime, ResolveRuntime(options));
  EncoderModel model;
  ASSIGN_OR_RETURN(std::unique_ptr<Compressor> compressor,
                   Compressor::Load(model_dir, adapter_path, runtime));
  const ModelConfig& config = compressor->config();
  const std::string encoder_dir = compressor->model_dir();  // A cross encoder's small model.
  EngineModelInfo& info = model.info;
  info.base_model = BaseName(encoder_dir);
  info.architecture = config.architecture;
  info.adapter = BaseName(compressor->adapter_path());
  info.encoder_id = compressor->encoder_id();
  info.hidden_size = compressor->slot_width();
  info.encoder_hidden_size = config.hidden_size;
  info.cross = compressor->is_cross();
  info.decoder_base_fingerprint = compressor->decoder_fingerprint();
  info.slots.kind = compressor->slot_kind();
  if (info.slots.kind == SlotKind::kKv) {
    info.slots.lead = {config.num_layers, 2, config.num_kv_heads};
    info.slots.row = config.head_dim;
  } else {
    info.slots.row = compressor->slot_width();
  }
  info.vocab_size = config.vocab_size;
  info.mem_size = compressor->mem_size();
  info.compression_rate = compressor->compression_rate();
  info.max_position_embeddings = config.max_position_embeddings;
  info.compute_dtype = runtime.dtype == at::kBFloat16 ? DType::kBFloat16 : DType::kFloat32;
  info.device = runtime.device.str();
  if (info.max_segment_tokens() + info.mem_size > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        encoder_dir, ": a full segment (", info.max_segment_tokens(), " tokens + ", info.mem_size,
        " memory slots) exceeds max_position_embeddings ", config.max_position_embeddings));
  }
  model.compressor = std::move(compressor);

  const std::string tokenizer_path = absl::StrCat(encoder_dir, "/tokenizer.model");
  if (RegularFileExists(tokenizer_path)) {
    ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(tokenizer_path));
    if (tokenizer->vocab_size() > config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(tokenizer_path, ": the tokenizer has ", tokenizer->vocab_size(),
                       " pieces but the model's vocab_size is ", config.vocab_size));
    }
    model.tokenizer = std::move(tokenizer);
    info.has_tokenizer = true;
  } else {
    ICAE_LOG(WARNING) << encoder_dir << " has no tokenizer.model: only token-id spans are accepted";
  }
  return model;
}

}  // namespace icae::encoder
