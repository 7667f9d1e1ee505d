#include "tools/train/lm_task.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/io/tokenizer.h"
#include "common/model/torch_status.h"
#include "common/model/transformer.h"
#include "tools/train/token_corpus.h"

namespace icae::train {

void RegisterLmFlags(FlagSet& flags, LmOptions* o) {
  flags.String("train", &o->train, "training corpus (documents separated by empty lines)");
  flags.String("valid", &o->valid, "validation corpus");
  flags.String("tokenizer", &o->tokenizer, "SentencePiece tokenizer.model (sets the vocabulary)");
  flags.Int("seq-len", &o->seq_len, "tokens per training sequence");
  flags.Int("valid-windows", &o->valid_windows, "validation sequences");
  flags.Int("hidden", &o->hidden, "hidden size");
  flags.Int("layers", &o->layers, "transformer layers");
  flags.Int("heads", &o->heads, "attention heads");
  flags.Int("kv-heads", &o->kv_heads, "key/value heads (grouped-query attention)");
  flags.Int("intermediate", &o->intermediate, "MLP size (0 = 8/3 hidden, multiple of 32)");
  flags.Int("max-positions", &o->max_positions, "max_position_embeddings in config.json");
  flags.Bool("tie-embeddings", &o->tie_embeddings, "share the embedding and lm_head");
  flags.Double("rope-theta", &o->rope_theta, "RoPE base");
  flags.Double("init-std", &o->init_std, "initialisation standard deviation");
  flags.String("save-dtype", &o->save_dtype, "storage dtype of the exported model");
  flags.Double("repeat-prob", &o->repeat_prob,
               "fraction of windows whose second half repeats the first (teaches copying)");
  flags.Double("copy-prob", &o->copy_prob,
               "fraction of windows with one span copied again at a random distance and length "
               "(teaches copying by content)");
  flags.String("init-model", &o->init_model,
               "continue from this HF model directory (its config replaces the shape flags)");
}

TransformerWeights CastWeights(const TransformerWeights& w, bool tied, at::ScalarType dtype) {
  return MapWeights(w, tied, [&](const at::Tensor& t) { return t.to(dtype); });
}

double MatmulParameters(const ModelConfig& c) {
  const double h = c.hidden_size;
  const double per_layer =
      h * (c.q_dim() + 2.0 * c.kv_dim()) + c.q_dim() * h + 3.0 * h * c.intermediate_size;
  return per_layer * c.num_layers + static_cast<double>(c.vocab_size) * h;
}

double AttentionForwardFlops(const ModelConfig& c, int64_t batch, int64_t seq) {
  // Scores (q k^T) and mixing (p v), each 2 * seq * seq * head_dim per head, full square.
  return 4.0 * batch * seq * seq * c.q_dim() * c.num_layers;
}

namespace {

class LmTask : public TrainTask {
 public:
  LmTask(LmOptions options, TrainOptions train, ModelConfig config, std::vector<int> train_stream,
         std::vector<int> valid_stream, std::optional<TransformerWeights> init)
      : options_(std::move(options)),
        train_(std::move(train)),
        config_(std::move(config)),
        train_stream_(std::move(train_stream)),
        valid_stream_(std::move(valid_stream)),
        sampler_(&train_stream_, options_.seq_len + 1, static_cast<uint64_t>(train_.seed)) {
    dtype_ = train_.bfloat16() ? at::kBFloat16 : at::kFloat;
    master_ = init ? std::move(*init)
                   : RandomWeights(config_, static_cast<uint64_t>(train_.seed), options_.init_std);
    params_ = master_.Parameters(config_.tie_word_embeddings);
    for (at::Tensor& p : params_) p.requires_grad_(true);
  }

  std::vector<at::Tensor> Parameters() const override { return params_; }

  absl::StatusOr<MicroBatchLoss> NextLoss() override {
    std::vector<int64_t> flat;
    for (int b = 0; b < train_.batch; ++b) {
      const WindowSampler::Cursor at = sampler_.cursor();
      std::vector<int> w = sampler_.Next();
      if (RepeatWindow(at)) {
        // The tail from w[half] on becomes a copy of the head (the ranges overlap: copy backward).
        const size_t half = w.size() / 2;
        std::copy_backward(w.begin(), w.begin() + (w.size() - half), w.end());
      }
      CopySpan(at, w);
      flat.insert(flat.end(), w.begin(), w.end());
    }
    at::Tensor ids = at::tensor(flat, at::kLong).view({train_.batch, options_.seq_len + 1});
    return MicroBatchLoss{Loss(ids), static_cast<int64_t>(train_.batch) * options_.seq_len};
  }

  absl::StatusOr<Metrics> Validate() override {
    std::vector<std::vector<int>> windows =
        FixedWindows(valid_stream_, options_.seq_len + 1, options_.valid_windows);
    double total = 0;
    int64_t count = 0;
    for (size_t i = 0; i < windows.size(); i += train_.batch) {
      std::vector<int64_t> flat;
      const size_t end = std::min(windows.size(), i + train_.batch);
      for (size_t j = i; j < end; ++j)
        flat.insert(flat.end(), windows[j].begin(), windows[j].end());
      at::Tensor ids =
          at::tensor(flat, at::kLong).view({static_cast<int64_t>(end - i), options_.seq_len + 1});
      total += Loss(ids).item<double>() * (end - i);
      count += end - i;
    }
    const double loss = total / std::max<int64_t>(1, count);
    return Metrics{{"loss", loss}, {"ppl", std::exp(loss)}};
  }

  nlohmann::json DataState() const override {
    return {{"epoch", sampler_.cursor().epoch}, {"index", sampler_.cursor().index}};
  }
  absl::Status RestoreDataState(const nlohmann::json& s) override {
    if (!s.is_object() || !s.contains("epoch") || !s.contains("index")) {
      return absl::DataLossError("checkpoint data state lacks epoch/index");
    }
    sampler_.set_cursor({s["epoch"].get<int64_t>(), s["index"].get<int64_t>()});
    return absl::OkStatus();
  }

  absl::Status Export(const std::string& dir) const override {
    const at::ScalarType dtype = options_.save_dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    RETURN_IF_ERROR(SaveHfModel(dir, config_, master_, dtype));
    ASSIGN_OR_RETURN(std::string tokenizer, ReadFileToString(options_.tokenizer));
    return WriteStringToFile(JoinPath(dir, "tokenizer.model"), tokenizer);
  }

  std::string Recipe() const override {
    return absl::StrCat(
        options_.repeat_prob > 0 ? absl::StrCat("repeat=", options_.repeat_prob, " ")
                                 : std::string(),
        options_.copy_prob > 0 ? absl::StrCat("copy=", options_.copy_prob, " ") : std::string(),
        options_.init_model.empty() ? std::string()
                                    : absl::StrCat("init=", options_.init_model, " "),
        "lm hidden=", config_.hidden_size, " layers=", config_.num_layers,
        " heads=", config_.num_heads, "/", config_.num_kv_heads,
        " inter=", config_.intermediate_size, " vocab=", config_.vocab_size,
        " tied=", config_.tie_word_embeddings, " seq_len=", options_.seq_len,
        " train_tokens=", train_stream_.size());
  }

  double FlopsPerMicroBatch() const override {
    const int64_t n = static_cast<int64_t>(train_.batch) * options_.seq_len;
    return 3.0 * (2.0 * MatmulParameters(config_) * n +
                  AttentionForwardFlops(config_, train_.batch, options_.seq_len));
  }

 private:
  // Whether the window served at `at` repeats its first half: a pure function of the seed and
  // the data position, so resumed runs make the same choices.
  bool RepeatWindow(const WindowSampler::Cursor& at) const {
    if (options_.repeat_prob <= 0) return false;
    uint64_t x = static_cast<uint64_t>(train_.seed) * 0x9E3779B97F4A7C15ull ^
                 static_cast<uint64_t>(at.epoch) * 0xBF58476D1CE4E5B9ull ^
                 static_cast<uint64_t>(at.index) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return static_cast<double>(x >> 11) / static_cast<double>(1ull << 53) < options_.repeat_prob;
  }

  // With probability copy_prob (a pure function of the seed and the data position), copies one
  // span of `w` to a later, non-overlapping place: length in [8, n / 2], distance in [L, n - L].
  void CopySpan(const WindowSampler::Cursor& at, std::vector<int>& w) const {
    const int64_t n = static_cast<int64_t>(w.size());
    if (options_.copy_prob <= 0 || n < 32) return;
    uint64_t state = static_cast<uint64_t>(train_.seed) ^ 0xC0B1E5ull ^
                     static_cast<uint64_t>(at.epoch) * 0xBF58476D1CE4E5B9ull ^
                     static_cast<uint64_t>(at.index) * 0x94D049BB133111EBull;
    const double coin = static_cast<double>(SplitMix64(&state) >> 11) / (1ull << 53);
    if (coin >= options_.copy_prob) return;
    const int64_t len = 8 + static_cast<int64_t>(SplitMix64(&state) % (n / 2 - 8 + 1));
    const int64_t src = static_cast<int64_t>(SplitMix64(&state) % (n - 2 * len + 1));
    const int64_t dst =
        src + len + static_cast<int64_t>(SplitMix64(&state) % (n - 2 * len - src + 1));
    std::copy(w.begin() + src, w.begin() + src + len, w.begin() + dst);
  }

  // Mean next-token loss over ids [batch, seq_len + 1].
  at::Tensor Loss(const at::Tensor& ids) const {
    const int64_t batch = ids.size(0), seq = ids.size(1) - 1;
    Transformer model(config_, CastWeights(master_, config_.tie_word_embeddings, dtype_),
                      Runtime{at::kCPU, dtype_});
    at::Tensor inputs = ids.narrow(1, 0, seq);
    at::Tensor targets = ids.narrow(1, 1, seq);
    at::Tensor positions = at::arange(seq, at::kLong).unsqueeze(0).expand({batch, seq});
    at::Tensor hidden = model.Forward(model.Embed(inputs), positions);  // [batch, seq, hidden]
    at::Tensor logits = model.Logits(hidden);                           // [batch, seq, vocab]
    return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
  }

  LmOptions options_;
  TrainOptions train_;
  ModelConfig config_;
  std::vector<int> train_stream_;
  std::vector<int> valid_stream_;
  WindowSampler sampler_;
  at::ScalarType dtype_;
  TransformerWeights master_;
  std::vector<at::Tensor> params_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TrainTask>> CreateLmTask(const LmOptions& o,
                                                        const TrainOptions& train) {
  RETURN_IF_ERROR(ValidateTrainOptions(train));
  auto bad = [](const char* flag, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", why));
  };
  if (o.train.empty()) return bad("train", "is required");
  if (o.valid.empty()) return bad("valid", "is required");
  if (o.tokenizer.empty()) return bad("tokenizer", "is required");
  if (o.seq_len < 2) return bad("seq-len", "must be at least 2");
  if (o.hidden <= 0 || o.layers <= 0 || o.heads <= 0 || o.kv_heads <= 0) {
    return bad("hidden/layers/heads/kv-heads", "must be positive");
  }
  if (o.hidden % o.heads != 0) return bad("heads", "must divide --hidden");
  if (o.heads % o.kv_heads != 0) return bad("kv-heads", "must divide --heads");
  if ((o.hidden / o.heads) % 2 != 0) return bad("heads", "must leave an even head size");
  if (o.max_positions < o.seq_len) return bad("max-positions", "must be >= --seq-len");
  if (o.save_dtype != "float32" && o.save_dtype != "bfloat16") {
    return bad("save-dtype", "must be float32 or bfloat16");
  }
  if (o.valid_windows <= 0) return bad("valid-windows", "must be positive");
  if (o.repeat_prob < 0 || o.repeat_prob > 1) return bad("repeat-prob", "must be in [0, 1]");
  if (o.copy_prob < 0 || o.copy_prob > 1) return bad("copy-prob", "must be in [0, 1]");
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(o.tokenizer));
  std::optional<TransformerWeights> init;
  ModelConfig config;
  if (!o.init_model.empty()) {
    ASSIGN_OR_RETURN(config, LoadModelConfig(o.init_model));
    if (tokenizer->vocab_size() > config.vocab_size) {
      return bad("init-model",
                 absl::StrCat("has vocab_size ", config.vocab_size, " but the tokenizer has ",
                              tokenizer->vocab_size(), " pieces"));
    }
    if (config.max_position_embeddings < o.seq_len) {
      return bad("seq-len", absl::StrCat("exceeds the init model's max_position_embeddings ",
                                         config.max_position_embeddings));
    }
    ASSIGN_OR_RETURN(TransformerWeights w,
                     LoadWeights(o.init_model, config, nullptr, at::kFloat, at::kCPU));
    RETURN_IF_ERROR(CatchTorch("copying the init model", [&]() -> absl::Status {
      init = CloneWeights(w, config.tie_word_embeddings);
      return absl::OkStatus();
    }));
  }
  if (!init) {  // Otherwise the shape comes from the init model.
    config.architecture = "LlamaForCausalLM";
    config.model_type = "llama";
    config.vocab_size = tokenizer->vocab_size();
    config.hidden_size = o.hidden;
    config.intermediate_size =
        o.intermediate > 0 ? o.intermediate : ((o.hidden * 8 / 3 + 31) / 32) * 32;
    config.num_layers = o.layers;
    config.num_heads = o.heads;
    config.num_kv_heads = o.kv_heads;
    config.head_dim = o.hidden / o.heads;
    config.rope_theta = o.rope_theta;
    config.rms_norm_eps = 1e-5;
    config.max_position_embeddings = o.max_positions;
    config.tie_word_embeddings = o.tie_embeddings;
    config.bos_token_id = tokenizer->bos_id();
    config.eos_token_id = tokenizer->eos_id();
  }
  const int64_t need = 2 * (o.seq_len + 1);
  ASSIGN_OR_RETURN(std::vector<int> train_stream,
                   TokenizeCorpus(o.train, *tokenizer, need, "--train corpus"));
  ASSIGN_OR_RETURN(std::vector<int> valid_stream,
                   TokenizeCorpus(o.valid, *tokenizer, o.seq_len + 1, "--valid corpus"));
  return CatchTorch("building the model", [&]() -> absl::StatusOr<std::unique_ptr<TrainTask>> {
    return std::unique_ptr<TrainTask>(new LmTask(o, train, std::move(config),
                                                 std::move(train_stream), std::move(valid_stream),
                                                 std::move(init)));
  });
}

}  // namespace icae::train
