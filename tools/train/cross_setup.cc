#include "tools/train/cross_setup.h"

#include <sys/stat.h>

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/compressor.h"
#include "common/model/fingerprint.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "common/model/transformer.h"
#include "tools/train/lm_task.h"

namespace icae::train {

void RegisterCrossFlags(FlagSet& flags, CrossOptions* o) {
  flags.String("encoder-init", &o->encoder_init,
               "start the small encoder from this HF model directory (e.g. the decoder's base, "
               "or a small LM from icae-train lm); empty: random weights of --encoder-* shape");
  flags.String("encoder-init-adapter", &o->encoder_init_adapter,
               "with --encoder-init: an ICAE adapter of that model, merged into it, whose memory "
               "and special rows start the cross encoder's");
  flags.Int("encoder-layers", &o->encoder_layers,
            "layers of the small encoder (with --encoder-init: the first N kept, 0 = all)");
  flags.Int("encoder-hidden", &o->encoder_hidden, "hidden size of a random small encoder");
  flags.Int("encoder-heads", &o->encoder_heads, "attention heads of a random small encoder");
  flags.Int("encoder-intermediate", &o->encoder_intermediate,
            "MLP width of a random small encoder (0 = about 8/3 x hidden)");
  flags.String("projector", &o->projector,
               "map from the encoder's hidden states to the decoder's embeddings: linear or mlp");
  flags.Int("projector-hidden", &o->projector_hidden,
            "mlp projector: the width between its two maps (0 = the decoder's hidden size)");
}

std::vector<at::Tensor> CrossTrainables::Parameters() const {
  std::vector<at::Tensor> params = encoder.Parameters(/*tied=*/true);  // Never lm_head.
  params.push_back(memory_rows);
  params.push_back(special);
  params.insert(params.end(), projector.begin(), projector.end());
  return params;
}

namespace {

absl::Status ValidateCrossOptions(const CrossOptions& o) {
  auto bad = [](const char* flag, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", why));
  };
  if (o.encoder_layers < 0) return bad("encoder-layers", "must be >= 0");
  if (o.encoder_init.empty()) {
    if (o.encoder_layers == 0) return bad("encoder-layers", "must be positive");
    if (o.encoder_hidden <= 0) return bad("encoder-hidden", "must be positive");
    if (o.encoder_heads <= 0 || o.encoder_hidden % o.encoder_heads != 0) {
      return bad("encoder-heads", "must divide --encoder-hidden");
    }
    if (o.encoder_intermediate < 0) return bad("encoder-intermediate", "must be >= 0");
  }
  if (!o.encoder_init_adapter.empty() && o.encoder_init.empty()) {
    return bad("encoder-init-adapter", "needs --encoder-init (the model it adapts)");
  }
  if (!ParseProjectorKind(o.projector).ok()) return bad("projector", "must be linear or mlp");
  if (o.projector_hidden < 0) return bad("projector-hidden", "must be >= 0");
  return absl::OkStatus();
}

// Trainable float32 copies (leaves) of every tensor; lm_head stays embed's when tied.
TransformerWeights Leaves(const TransformerWeights& w, bool tied) {
  TransformerWeights out = CloneWeights(w, tied);
  for (at::Tensor& p : out.Parameters(tied)) p.requires_grad_(true);
  return out;
}

}  // namespace

absl::StatusOr<CrossTrainables> InitCross(const CrossOptions& o, const ModelConfig& decoder,
                                          double decoder_embed_std, int mem_size, int rate,
                                          MemoryPositions positions, uint64_t seed) {
  RETURN_IF_ERROR(ValidateCrossOptions(o));
  CrossTrainables t;
  ModelConfig& c = t.encoder_config;
  TransformerWeights weights;
  std::optional<Adapter> adapter;
  if (!o.encoder_init.empty()) {
    ASSIGN_OR_RETURN(c, LoadModelConfig(o.encoder_init));
    if (!o.encoder_init_adapter.empty()) {
      ASSIGN_OR_RETURN(adapter, LoadAdapter(o.encoder_init_adapter, c, /*with_lora=*/true));
      if (adapter->config.mem_size != mem_size ||
          adapter->config.slot_kind != SlotKind::kEmbedding) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--encoder-init-adapter ", o.encoder_init_adapter, " has ", adapter->config.mem_size,
            " ", SlotKindName(adapter->config.slot_kind), " memory rows; the cross encoder ",
            mem_size, " embedding ones"));
      }
      if (c.hidden_size != decoder.hidden_size) {
        return absl::InvalidArgumentError(
            "--encoder-init-adapter: its model must have the decoder's hidden size");
      }
    }
    ASSIGN_OR_RETURN(weights, LoadWeights(o.encoder_init, c, adapter ? &*adapter : nullptr,
                                          at::kFloat, at::kCPU));
    if (o.encoder_layers > c.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("--encoder-layers ", o.encoder_layers,
                                                     " exceeds the ", c.num_layers, " layers of ",
                                                     o.encoder_init));
    }
    if (o.encoder_layers > 0) {
      c.num_layers = o.encoder_layers;
      weights.layers.resize(o.encoder_layers);
    }
  } else {
    c.architecture = "LlamaForCausalLM";
    c.model_type = "llama";
    c.vocab_size = decoder.vocab_size;
    c.hidden_size = o.encoder_hidden;
    c.intermediate_size = o.encoder_intermediate > 0
                              ? o.encoder_intermediate
                              : ((o.encoder_hidden * 8 / 3 + 31) / 32) * 32;
    c.num_layers = o.encoder_layers;
    c.num_heads = c.num_kv_heads = o.encoder_heads;
    c.head_dim = o.encoder_hidden / o.encoder_heads;
    c.rope_theta = decoder.rope_theta;
    c.rms_norm_eps = decoder.rms_norm_eps;
    c.max_position_embeddings = decoder.max_position_embeddings;
    c.tie_word_embeddings = true;
    c.bos_token_id = decoder.bos_token_id;
    c.eos_token_id = decoder.eos_token_id;
    c.torch_dtype = "float32";
    weights = RandomWeights(c, seed);
  }
  if (c.vocab_size < decoder.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("the small encoder's vocab_size ", c.vocab_size,
                     " does not cover the decoder's ", decoder.vocab_size,
                     " (it reads the decoder tokenizer's ids)"));
  }
  CrossEncoderConfig& x = t.config;
  x.mem_size = mem_size;
  x.compression_rate = rate;
  x.memory_positions = positions;
  x.projector = *ParseProjectorKind(o.projector);
  x.encoder_hidden = c.hidden_size;
  x.decoder_hidden = decoder.hidden_size;
  if (x.projector == ProjectorKind::kMlp) {
    x.projector_hidden = o.projector_hidden > 0 ? o.projector_hidden : decoder.hidden_size;
  }
  RETURN_IF_ERROR(CatchTorch("initialising the cross encoder", [&]() -> absl::Status {
    at::Generator gen = at::detail::createCPUGenerator(seed ^ 0xc2055);
    t.encoder = Leaves(weights, c.tie_word_embeddings);
    const double embed_std = t.encoder.embed.std().item<double>();
    t.memory_rows = at::normal(0.0, embed_std, {mem_size, c.hidden_size}, gen, at::kFloat);
    t.special = at::normal(0.0, decoder_embed_std, {3, decoder.hidden_size}, gen, at::kFloat);
    // nn.Linear's init (uniform +-1/sqrt(in)) for the first map; the last one N(0, s / sqrt(in))
    // so that its outputs start near the decoder's embedding scale s.
    auto uniform = [&](int64_t out, int64_t in) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      return at::empty({out, in}, at::kFloat).uniform_(-bound, bound, gen);
    };
    auto last = [&](int64_t out, int64_t in) {
      return at::normal(0.0, decoder_embed_std / std::sqrt(static_cast<double>(in)), {out, in},
                        gen, at::kFloat);
    };
    if (adapter) {  // The ICAE encoder's own rows; a linear projector passes them on.
      t.memory_rows = adapter->MemoryEmbeddings().clone();
      t.special = adapter->memory_embed.narrow(0, mem_size, 3).clone();
    }
    if (x.projector == ProjectorKind::kLinear) {
      t.projector = {adapter ? at::eye(x.decoder_hidden, at::kFloat)
                             : last(x.decoder_hidden, x.encoder_hidden),
                     at::zeros({x.decoder_hidden})};
    } else {
      t.projector = {uniform(x.projector_hidden, x.encoder_hidden),
                     at::zeros({x.projector_hidden}),
                     last(x.decoder_hidden, x.projector_hidden), at::zeros({x.decoder_hidden})};
    }
    for (at::Tensor* p : {&t.memory_rows, &t.special}) p->requires_grad_(true);
    for (at::Tensor& p : t.projector) p.requires_grad_(true);
    return absl::OkStatus();
  }));
  return t;
}

absl::StatusOr<CrossTrainables> CrossFromPackage(const std::string& dir) {
  ASSIGN_OR_RETURN(CrossEncoder cross, LoadCrossEncoder(dir));
  CrossTrainables t;
  t.config = cross.config;
  const std::string model_dir = cross.encoder_model_dir();
  ASSIGN_OR_RETURN(t.encoder_config, LoadModelConfig(model_dir));
  if (t.encoder_config.hidden_size != cross.config.encoder_hidden) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": encoder_hidden_size ",
                                                   cross.config.encoder_hidden, " but ", model_dir,
                                                   " has ", t.encoder_config.hidden_size));
  }
  ASSIGN_OR_RETURN(TransformerWeights w,
                   LoadWeights(model_dir, t.encoder_config, nullptr, at::kFloat, at::kCPU));
  RETURN_IF_ERROR(CatchTorch("loading the cross encoder", [&]() -> absl::Status {
    t.encoder = Leaves(w, t.encoder_config.tie_word_embeddings);
    auto leaf = [](const at::Tensor& x) { return x.clone().requires_grad_(true); };
    t.memory_rows = leaf(cross.memory_rows);
    t.special = leaf(cross.special);
    for (const at::Tensor& p : cross.projector) t.projector.push_back(leaf(p));
    return absl::OkStatus();
  }));
  return t;
}

std::vector<at::Tensor> EncodeCrossContexts(const CrossTrainables& cross, at::ScalarType dtype,
                                            const std::vector<std::vector<int>>& contexts) {
  const CrossEncoderConfig& c = cross.config;
  Transformer model(cross.encoder_config,
                    CastWeights(cross.encoder, cross.encoder_config.tie_word_embeddings, dtype),
                    Runtime{at::kCPU, dtype});
  std::vector<std::vector<int>> segments;
  std::vector<int> num_segments;
  for (const std::vector<int>& context : contexts) {
    SegmentPlan plan = PlanSegments(static_cast<int>(context.size()), c.mem_size,
                                    c.compression_rate);
    num_segments.push_back(plan.num_segments);
    for (const auto& [begin, end] : plan.ranges)
      segments.emplace_back(context.begin() + begin, context.begin() + end);
  }
  std::vector<at::Tensor> projector;
  for (const at::Tensor& p : cross.projector) projector.push_back(p.to(dtype));
  at::Tensor hidden = EncodeSegmentBatch(model, cross.memory_rows.to(dtype), segments,
                                         c.memory_positions);  // [segments, mem, enc_hidden]
  at::Tensor slots = ProjectSlots(c.projector, projector, hidden);
  std::vector<at::Tensor> out;
  int64_t first = 0;
  for (int n : num_segments) {
    out.push_back(JoinSegmentSlots(slots.narrow(0, first, n), SlotKind::kEmbedding));
    first += n;
  }
  return out;
}

absl::Status ExportCross(const std::string& dir, const CrossTrainables& t,
                         const std::string& decoder_dir, const std::string& tokenizer_path,
                         at::ScalarType dtype) {
  CrossEncoder cross;
  cross.config = t.config;
  const std::string model_dir = JoinPath(dir, cross.config.encoder_model);
  ::mkdir(dir.c_str(), 0755);
  RETURN_IF_ERROR(SaveHfModel(model_dir, t.encoder_config, t.encoder, dtype));
  ASSIGN_OR_RETURN(std::string tokenizer, ReadFileToString(tokenizer_path));
  RETURN_IF_ERROR(WriteStringToFile(JoinPath(model_dir, "tokenizer.model"), tokenizer));
  ASSIGN_OR_RETURN(cross.config.encoder_fingerprint, BaseModelFingerprint(model_dir));
  ASSIGN_OR_RETURN(cross.config.encoder_weights_sha256, ModelWeightsSha256(model_dir));
  ASSIGN_OR_RETURN(cross.config.decoder_fingerprint, BaseModelFingerprint(decoder_dir));
  cross.memory_rows = t.memory_rows;
  cross.special = t.special;
  cross.projector = t.projector;
  return SaveCrossEncoder(dir, cross);
}

double CrossEncoderFlops(const CrossTrainables& cross, int64_t batch, int64_t positions) {
  const ModelConfig& c = cross.encoder_config;
  const double p = MatmulParameters(c) - static_cast<double>(c.vocab_size) * c.hidden_size;
  return 6.0 * p * batch * positions + 3.0 * AttentionForwardFlops(c, batch, positions);
}

}  // namespace icae::train
