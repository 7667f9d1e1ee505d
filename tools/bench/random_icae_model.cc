#include "tools/bench/random_icae_model.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/adapter_writer.h"
#include "common/model/cross_encoder.h"
#include "common/model/fingerprint.h"
#include "common/model/torch_status.h"
#include "common/model/weights.h"

namespace icae {

ModelConfig RandomLlamaConfig(int hidden, int layers, int heads, int intermediate, int vocab,
                              int max_positions) {
  ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.model_type = "llama";
  config.hidden_size = hidden;
  config.num_layers = layers;
  config.num_heads = heads;
  config.num_kv_heads = heads;
  config.head_dim = hidden / heads;
  config.intermediate_size = intermediate;
  config.vocab_size = vocab;
  config.max_position_embeddings = max_positions;
  return config;
}

RandomIcaePaths RandomIcaePathsIn(const std::string& dir) {
  return RandomIcaePaths{dir + "/model", dir + "/adapter/adapter.safetensors"};
}

absl::Status WriteRandomIcaeModel(const std::string& dir, const ModelConfig& config, int mem_size,
                                  int lora_r, uint64_t seed, RandomIcaePaths* paths) {
  *paths = RandomIcaePathsIn(dir);
  const std::string adapter_dir = dir + "/adapter";
  ::mkdir(dir.c_str(), 0755);
  RETURN_IF_ERROR(CatchTorch("writing the random model", [&]() -> absl::Status {
    TransformerWeights weights = RandomWeights(config, seed);
    return SaveHfModel(paths->model_dir, config, weights, at::kFloat);
  }));
  return CatchTorch("writing the random adapter", [&]() -> absl::Status {
    AdapterConfig adapter_config;
    adapter_config.r = lora_r;
    adapter_config.lora_alpha = 32;
    adapter_config.target_modules = {"q_proj", "v_proj"};
    adapter_config.mem_size = mem_size;
    adapter_config.compression_rate = 4;
    return SaveIcaeAdapter(adapter_dir, RandomAdapter(config, adapter_config, seed + 1), "model");
  });
}

absl::Status WriteRandomCrossEncoder(const std::string& dir, const std::string& decoder_dir,
                                     const ModelConfig& encoder, int mem_size, int rate,
                                     const std::string& projector, uint64_t seed) {
  ASSIGN_OR_RETURN(ModelConfig decoder, LoadModelConfig(decoder_dir));
  ASSIGN_OR_RETURN(ProjectorKind kind, ParseProjectorKind(projector));
  ::mkdir(dir.c_str(), 0755);
  CrossEncoder cross;
  CrossEncoderConfig& c = cross.config;
  const std::string encoder_dir = JoinPath(dir, c.encoder_model);
  RETURN_IF_ERROR(CatchTorch("writing the random encoder", [&]() -> absl::Status {
    return SaveHfModel(encoder_dir, encoder, RandomWeights(encoder, seed), at::kFloat);
  }));
  const std::string tokenizer = JoinPath(decoder_dir, "tokenizer.model");
  if (FileExists(tokenizer)) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(tokenizer));
    RETURN_IF_ERROR(WriteStringToFile(JoinPath(encoder_dir, "tokenizer.model"), bytes));
  }
  c.mem_size = mem_size;
  c.compression_rate = rate;
  c.projector = kind;
  c.encoder_hidden = encoder.hidden_size;
  c.decoder_hidden = decoder.hidden_size;
  c.projector_hidden = kind == ProjectorKind::kMlp ? decoder.hidden_size : 0;
  ASSIGN_OR_RETURN(c.encoder_fingerprint, BaseModelFingerprint(encoder_dir));
  ASSIGN_OR_RETURN(c.encoder_weights_sha256, ModelWeightsSha256(encoder_dir));
  ASSIGN_OR_RETURN(c.decoder_fingerprint, BaseModelFingerprint(decoder_dir));
  RETURN_IF_ERROR(CatchTorch("writing the random cross encoder", [&]() -> absl::Status {
    at::Generator gen = at::detail::createCPUGenerator(seed + 1);
    auto normal = [&](std::vector<int64_t> shape, double std) {
      return at::normal(0.0, std, shape, gen, at::TensorOptions().dtype(at::kFloat));
    };
    auto map = [&](int64_t out, int64_t in) {
      return std::vector<at::Tensor>{normal({out, in}, 1.0 / std::sqrt(static_cast<double>(in))),
                                     normal({out}, 0.02)};
    };
    cross.memory_rows = normal({mem_size, encoder.hidden_size}, 0.02);
    cross.special = normal({3, decoder.hidden_size}, 0.02);
    cross.projector = map(decoder.hidden_size, encoder.hidden_size);
    if (kind == ProjectorKind::kMlp) {
      for (at::Tensor& t : map(decoder.hidden_size, decoder.hidden_size)) {
        cross.projector.push_back(t);
      }
    }
    return absl::OkStatus();
  }));
  return SaveCrossEncoder(dir, cross);
}

}  // namespace icae
