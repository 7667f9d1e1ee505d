#include "tools/train/icae_setup.h"

#include <cmath>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/io/tokenizer.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "tools/train/finetune_data.h"
#include "tools/train/icae_layout.h"
#include "tools/train/lm_task.h"
#include "tools/train/token_corpus.h"

namespace icae::train {

std::vector<std::string> ParseLoraTargets(const std::string& flag) {
  if (flag == "all") {
    return {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  }
  std::vector<std::string> out;
  for (absl::string_view m : absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(m));
  }
  return out;
}

void RegisterIcaeFlags(FlagSet& flags, IcaeOptions* o) {
  flags.String("model", &o->model, "frozen base model: HF directory with tokenizer.model");
  flags.String("train", &o->train, "training data");
  flags.String("valid", &o->valid, "validation data");
  flags.String("init-adapter", &o->init_adapter,
               "start from this adapter (its r, alpha, targets, layout and mem_size win; its rate "
               "too unless --rate is given)");
  flags.Int("lora-r", &o->lora_r, "LoRA rank");
  flags.String("lora-targets", &o->lora_targets,
               "LoRA target modules, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,"
               "up_proj,down_proj) or all");
  flags.Double("lora-alpha", &o->lora_alpha, "LoRA alpha (scaling = alpha / r)");
  flags.Int("mem-size", &o->mem_size, "memory slots per segment");
  flags.Int("rate", &o->rate, "compression rate: a segment is mem_size * rate tokens");
  flags.String("memory-positions", &o->memory_positions,
               "RoPE positions of the memory tokens in the encoder: append (ICAE: after the "
               "text) or uniform (each at the end of its chunk of rate tokens)");
  flags.String("slot-kind", &o->slot_kind,
               "what the encoder emits per memory token: embedding (ICAE: the final hidden "
               "state, read as an input embedding) or kv (500xCompressor: every layer's keys and "
               "values, read as a KV-cache prefix); a new adapter only");
  flags.Int("valid-samples", &o->valid_samples, "validation samples");
  flags.Double("residual-lr-scale", &o->residual_lr_scale,
               "lr multiplier for the memory rows and the o_proj/down_proj LoRA B (use c on a "
               "base rescaled by c)");
}

absl::Status ValidateIcaeOptions(const IcaeOptions& o) {
  auto bad = [](const char* flag, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", why));
  };
  if (o.model.empty()) return bad("model", "is required");
  if (o.train.empty()) return bad("train", "is required");
  if (o.valid.empty()) return bad("valid", "is required");
  if (o.lora_r <= 0) return bad("lora-r", "must be positive");
  if (!(o.lora_alpha > 0)) return bad("lora-alpha", "must be positive");
  if (o.mem_size <= 0) return bad("mem-size", "must be positive");
  if (o.rate <= 0) return bad("rate", "must be positive");
  if (o.valid_samples <= 0) return bad("valid-samples", "must be positive");
  if (!(o.residual_lr_scale > 0)) return bad("residual-lr-scale", "must be positive");
  if (ParseLoraTargets(o.lora_targets).empty()) return bad("lora-targets", "names no module");
  if (!ParseMemoryPositions(o.memory_positions).ok()) {
    return bad("memory-positions", "must be append or uniform");
  }
  if (!ParseSlotKind(o.slot_kind).ok()) return bad("slot-kind", "must be embedding or kv");
  return absl::OkStatus();
}

// One multiplier per IcaeTrainables::Parameters() entry: `residual` for the memory rows and the
// o_proj / down_proj B matrices, 1 for the rest.
std::vector<double> IcaeLearningRateScales(const IcaeTrainables& icae, double residual) {
  std::vector<double> scales;
  for (size_t l = 0; l < icae.lora.layers.size(); ++l) {
    for (const std::string& m : icae.config.target_modules) {
      const bool writes = m == "o_proj" || m == "down_proj";
      scales.insert(scales.end(), {1.0, writes ? residual : 1.0});  // A, B
    }
  }
  scales.push_back(residual);  // memory_embed
  return scales;
}

namespace {

// The frozen base and its tokenizer.
absl::Status LoadBase(const IcaeOptions& o, const TrainOptions& train, IcaeSetup& s) {
  const Runtime runtime{at::kCPU, train.bfloat16() ? at::kBFloat16 : at::kFloat};
  ASSIGN_OR_RETURN(s.base, Transformer::Load(o.model, runtime));
  ASSIGN_OR_RETURN(s.tokenizer, Tokenizer::LoadFromModelDir(o.model));
  const ModelConfig& config = s.base->config();
  if (s.tokenizer->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.model, ": tokenizer.model has ", s.tokenizer->vocab_size(),
                     " pieces but the model's vocab_size is ", config.vocab_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<IcaeSetup> LoadCrossSetup(const PretrainOptions& o, const TrainOptions& train) {
  IcaeSetup s;
  RETURN_IF_ERROR(LoadBase(o, train, s));
  const ModelConfig& config = s.base->config();
  if (!o.init_adapter.empty()) {
    if (!IsCrossEncoderPackage(o.init_adapter)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--init-adapter ", o.init_adapter, " is not a cross-encoder package (no ",
          kCrossEncoderConfigFile, ")"));
    }
    ASSIGN_OR_RETURN(s.cross, CrossFromPackage(o.init_adapter));
    if (s.cross->config.decoder_hidden != config.hidden_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--init-adapter ", o.init_adapter, " writes slots of width ",
          s.cross->config.decoder_hidden, " but ", o.model, " has hidden_size ",
          config.hidden_size));
    }
    if (o.mem_size_given && o.mem_size != s.cross->config.mem_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mem-size ", o.mem_size, " differs from the ", s.cross->config.mem_size,
                       " memory rows of --init-adapter ", o.init_adapter));
    }
    if (o.rate_given) s.cross->config.compression_rate = o.rate;
  } else {
    ASSIGN_OR_RETURN(double embed_std, CatchTorch("measuring the embeddings", [&]() {
                       return absl::StatusOr<double>(
                           s.base->weights().embed.to(at::kFloat).std().item<double>());
                     }));
    ASSIGN_OR_RETURN(s.cross, InitCross(o.cross_options, config, embed_std, o.mem_size, o.rate,
                                        *ParseMemoryPositions(o.memory_positions),
                                        static_cast<uint64_t>(train.seed)));
  }
  const int longest = s.cross->config.mem_size * (s.cross->config.compression_rate + 1);
  if (longest > s.cross->encoder_config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a full segment and its memory rows (", longest,
        " positions) exceed the small encoder's max_position_embeddings ",
        s.cross->encoder_config.max_position_embeddings));
  }
  CrossEncoder plan;
  plan.config = s.cross->config;
  s.icae.config = plan.AsAdapterConfig();
  return s;
}

absl::StatusOr<IcaeSetup> LoadIcaeSetup(const IcaeOptions& o, const TrainOptions& train,
                                        bool train_base) {
  IcaeSetup s;
  RETURN_IF_ERROR(LoadBase(o, train, s));
  const ModelConfig& config = s.base->config();
  if (train_base) {
    ASSIGN_OR_RETURN(TransformerWeights w,
                     LoadWeights(o.model, config, nullptr, at::kFloat, at::kCPU));
    RETURN_IF_ERROR(CatchTorch("copying the base for co-training", [&]() -> absl::Status {
      s.master = CloneWeights(w, config.tie_word_embeddings);
      return absl::OkStatus();
    }));
  }
  if (!o.init_adapter.empty()) {
    ASSIGN_OR_RETURN(Adapter adapter, LoadAdapter(o.init_adapter, config, /*with_lora=*/true));
    ASSIGN_OR_RETURN(s.icae, IcaeFromAdapter(adapter, config));
    if (o.mem_size_given && o.mem_size != s.icae.config.mem_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mem-size ", o.mem_size, " differs from the ", s.icae.config.mem_size,
                       " memory rows of --init-adapter ", o.init_adapter));
    }
    // The rate is a property of the segment plan, not of the weights: the same memory rows can
    // go on at another rate (1x, then 2x, then 4x trains far faster than 4x from the start).
    if (o.rate_given) s.icae.config.compression_rate = o.rate;
    if (o.slot_kind_given && *ParseSlotKind(o.slot_kind) != s.icae.config.slot_kind) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--slot-kind ", o.slot_kind, " differs from the ",
          SlotKindName(s.icae.config.slot_kind), " slots of --init-adapter ", o.init_adapter));
    }
  } else {
    RETURN_IF_ERROR(CatchTorch("initialising the adapter", [&]() -> absl::Status {
      const double embed_std = s.base->weights().embed.to(at::kFloat).std().item<double>();
      ASSIGN_OR_RETURN(s.icae,
                       InitIcae(config, o.lora_r, o.lora_alpha, ParseLoraTargets(o.lora_targets),
                                o.mem_size, o.rate, static_cast<uint64_t>(train.seed), embed_std,
                                *ParseMemoryPositions(o.memory_positions)));
      s.icae.config.slot_kind = *ParseSlotKind(o.slot_kind);
      return absl::OkStatus();
    }));
  }
  return s;
}

std::string IcaeRecipe(const IcaeSetup& s, const std::string& model) {
  const AdapterConfig& c = s.icae.config;
  return absl::StrCat(
      "base=", model, " hidden=", s.base->config().hidden_size,
      " layers=", s.base->config().num_layers, " r=", c.r, " alpha=", c.lora_alpha,
      c.target_modules == std::vector<std::string>{"q_proj", "v_proj"}
          ? std::string()
          : absl::StrCat(" targets=", absl::StrJoin(c.target_modules, ",")),
      c.memory_positions == MemoryPositions::kAppend
          ? std::string()
          : absl::StrCat(" memory_positions=", MemoryPositionsName(c.memory_positions)),
      c.slot_kind == SlotKind::kEmbedding
          ? std::string()
          : absl::StrCat(" slot_kind=", SlotKindName(c.slot_kind)),
      " mem=", c.mem_size, " rate=", c.compression_rate);
}

// Forward + backward FLOPs for encoder positions (frozen weights: input gradients only, no
// lm_head) and decoder positions (logits included).
double IcaeFlops(const ModelConfig& c, int64_t batch, int64_t enc_len, int64_t dec_len) {
  const double p = MatmulParameters(c);
  const double p_enc = p - static_cast<double>(c.vocab_size) * c.hidden_size;
  return 4.0 * p_enc * batch * enc_len + 4.0 * p * batch * dec_len +
         3.0 *
             (AttentionForwardFlops(c, batch, enc_len) + AttentionForwardFlops(c, batch, dec_len));
}

}  // namespace icae::train
