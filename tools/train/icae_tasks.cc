#include "tools/train/icae_tasks.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/io/tokenizer.h"
#include "common/model/compressor.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "tools/train/finetune_data.h"
#include "tools/train/cross_setup.h"
#include "tools/train/icae_layout.h"
#include "tools/train/icae_setup.h"
#include "tools/train/lm_task.h"
#include "tools/train/token_corpus.h"

namespace icae::train {
namespace {

class PretrainTask : public TrainTask {
 public:
  // `teacher`: the --slot-teacher adapter's compressor, or null.
  PretrainTask(PretrainOptions options, TrainOptions train, IcaeSetup setup,
               std::vector<int> train_stream, std::vector<int> valid_stream,
               std::unique_ptr<Compressor> teacher)
      : options_(std::move(options)),
        train_(std::move(train)),
        s_(std::move(setup)),
        train_stream_(std::move(train_stream)),
        valid_stream_(std::move(valid_stream)),
        sampler_(&train_stream_, 2 * options_.span_tokens, static_cast<uint64_t>(train_.seed)),
        rng_(static_cast<uint64_t>(train_.seed) ^ 0x1cae),
        teacher_(std::move(teacher)) {
    if (options_.train_base) {
      const bool tied = s_.base->config().tie_word_embeddings;
      base_params_ = s_.master->Parameters(tied);
      for (at::Tensor& p : base_params_) p.requires_grad_(true);
    }
  }

  std::vector<at::Tensor> Parameters() const override {
    std::vector<at::Tensor> params = s_.cross ? s_.cross->Parameters() : s_.icae.Parameters();
    params.insert(params.end(), base_params_.begin(), base_params_.end());
    return params;
  }
  std::vector<double> LearningRateScales() const override {
    if (s_.cross) return {};  // One lr for the whole cross encoder.
    std::vector<double> scales = IcaeLearningRateScales(s_.icae, options_.residual_lr_scale);
    scales.insert(scales.end(), base_params_.size(), options_.base_lr_scale);
    return scales;
  }

  absl::StatusOr<MicroBatchLoss> NextLoss() override {
    std::vector<std::vector<int>> windows;
    std::vector<Objective> objectives;
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    const int64_t step = micro_batches_ / train_.accum;  // Optimizer steps done so far.
    const double lm_ratio = step < options_.ae_only_steps ? 0.0 : options_.lm_ratio;
    ++micro_batches_;
    std::vector<int> lengths;  // Tokens compressed per sample (empty: span_tokens each).
    for (int b = 0; b < train_.batch; ++b) {
      windows.push_back(sampler_.Next());
      // Without text LM samples the draws are those of earlier versions (same runs, same seeds).
      if (options_.text_lm_ratio > 0 && coin(rng_) < options_.text_lm_ratio) {
        objectives.push_back(Objective::kText);
      } else {
        objectives.push_back(coin(rng_) < lm_ratio ? Objective::kContinue : Objective::kAe);
      }
      // Likewise without --min-span-tokens: no length is drawn.
      if (options_.min_span_tokens > 0) {
        std::uniform_int_distribution<int> length(options_.min_span_tokens, options_.span_tokens);
        const bool short_span = options_.short_span_ratio >= 1.0 ||
                                coin(rng_) < options_.short_span_ratio;
        lengths.push_back(short_span ? length(rng_) : options_.span_tokens);
      }
      // Likewise without --copy-continuation-prob.
      if (options_.copy_continuation_prob > 0 && objectives.back() == Objective::kContinue &&
          coin(rng_) < options_.copy_continuation_prob) {
        CopySpanIntoContinuation(windows.back(),
                                 lengths.empty() ? options_.span_tokens : lengths.back(),
                                 options_.span_tokens, rng_);
      }
    }
    const bool kd = options_.kd_weight > 0;
    BatchLoss loss =
        Loss(Model(TrainedBase()), windows, objectives, kd, options_.kd_weight, lengths);
    at::Tensor total = loss.mean_loss;
    if (teacher_) total = total + options_.slot_mse_weight * last_slot_mse_;
    return MicroBatchLoss{total, positions_};
  }

  absl::StatusOr<Metrics> Validate() override {
    std::vector<std::vector<int>> windows =
        FixedWindows(valid_stream_, 2 * options_.span_tokens, options_.valid_samples);
    double ae = 0, lm = 0, text = 0, kl = 0, teacher = 0, slot_mse = 0;
    int64_t ae_n = 0, lm_n = 0, ae_correct = 0, text_n = 0;
    const std::optional<Transformer> trained = TrainedBase();
    const Transformer& model = Model(trained);
    for (size_t i = 0; i < windows.size(); i += train_.batch) {
      std::vector<std::vector<int>> chunk(
          windows.begin() + i, windows.begin() + std::min(windows.size(), i + train_.batch));
      BatchLoss a = Loss(model, chunk, std::vector<Objective>(chunk.size(), Objective::kAe));
      if (teacher_) slot_mse += last_slot_mse_.item<double>() * chunk.size();
      double teacher_nll = 0;
      BatchLoss l = Loss(model, chunk, std::vector<Objective>(chunk.size(), Objective::kContinue),
                         /*with_teacher=*/true, /*kd_weight=*/0, {}, &teacher_nll);
      kl += l.kl_sum;  // kd_weight 0: lm_loss is the cross-entropy alone.
      teacher += teacher_nll;
      ae += a.mean_loss.item<double>() * a.labelled;
      ae_n += a.labelled;
      ae_correct += a.correct;
      lm += l.mean_loss.item<double>() * l.labelled;
      lm_n += l.labelled;
      if (options_.train_base) {
        BatchLoss t = Loss(model, chunk, std::vector<Objective>(chunk.size(), Objective::kText));
        text += t.mean_loss.item<double>() * t.labelled;
        text_n += t.labelled;
      }
    }
    const double ae_loss = ae / std::max<int64_t>(1, ae_n);
    const double lm_loss = lm / std::max<int64_t>(1, lm_n);
    Metrics metrics{{"loss", (1 - options_.lm_ratio) * ae_loss + options_.lm_ratio * lm_loss},
                    {"ae_loss", ae_loss},
                    {"ae_token_acc", static_cast<double>(ae_correct) / std::max<int64_t>(1, ae_n)},
                    {"lm_loss", lm_loss},
                    {"lm_ppl", std::exp(lm_loss)}};
    // The same continuations predicted from the span's text, and how far the slots are from it:
    // the encoder-quality target is lm_ppl <= 1.05 x lm_text_ppl.
    const double text_ppl = std::exp(teacher / std::max<int64_t>(1, lm_n));
    metrics.push_back({"lm_text_ppl", text_ppl});
    metrics.push_back({"lm_gap", std::exp(lm_loss) / text_ppl - 1.0});
    metrics.push_back({"kd_kl", kl / std::max<int64_t>(1, lm_n)});
    if (teacher_) metrics.push_back({"slot_mse", slot_mse / windows.size()});
    // The base's own perplexity on the whole window: what co-training must not give away.
    if (options_.train_base)
      metrics.push_back({"text_ppl", std::exp(text / std::max<int64_t>(1, text_n))});
    return metrics;
  }

  nlohmann::json DataState() const override {
    std::ostringstream rng;
    rng << rng_;
    return {{"epoch", sampler_.cursor().epoch},
            {"index", sampler_.cursor().index},
            {"rng", rng.str()},
            {"micro_batches", micro_batches_}};
  }
  absl::Status RestoreDataState(const nlohmann::json& s) override {
    if (!s.is_object() || !s.contains("epoch") || !s.contains("index") || !s.contains("rng")) {
      return absl::DataLossError("checkpoint data state lacks epoch/index/rng");
    }
    sampler_.set_cursor({s["epoch"].get<int64_t>(), s["index"].get<int64_t>()});
    std::istringstream rng(s["rng"].get<std::string>());
    rng >> rng_;
    if (rng.fail()) return absl::DataLossError("checkpoint RNG state is unreadable");
    micro_batches_ = s.value("micro_batches", int64_t{0});
    return absl::OkStatus();
  }

  absl::Status Export(const std::string& dir) const override {
    if (s_.cross) {
      return ExportCross(dir, *s_.cross, options_.model,
                         JoinPath(options_.model, "tokenizer.model"),
                         s_.base->weights().embed.scalar_type());
    }
    if (!options_.train_base)
      return SaveIcaeAdapter(dir, s_.base->config(), s_.icae, options_.model);
    const std::string base = JoinPath(dir, "base");
    RETURN_IF_ERROR(
        SaveHfModel(base, s_.base->config(), *s_.master, s_.base->weights().embed.scalar_type()));
    ASSIGN_OR_RETURN(std::string tokenizer,
                     ReadFileToString(JoinPath(options_.model, "tokenizer.model")));
    RETURN_IF_ERROR(WriteStringToFile(JoinPath(base, "tokenizer.model"), tokenizer));
    return SaveIcaeAdapter(dir, s_.base->config(), s_.icae, base);
  }
  std::string Recipe() const override {
    return absl::StrCat(
        "pretrain ", s_.cross ? CrossRecipe() : IcaeRecipe(s_, options_.model),
        " span=", options_.span_tokens,
        options_.min_span_tokens > 0
            ? absl::StrCat(" min_span=", options_.min_span_tokens,
                           " short_span_ratio=", options_.short_span_ratio)
            : std::string(),
        " lm_ratio=", options_.lm_ratio,
        options_.kd_weight > 0 ? absl::StrCat(" kd_weight=", options_.kd_weight) : std::string(),
        options_.copy_continuation_prob > 0
            ? absl::StrCat(" copy_continuation=", options_.copy_continuation_prob)
            : std::string(),
        teacher_ ? absl::StrCat(" slot_teacher=", options_.slot_teacher,
                                " slot_mse_weight=", options_.slot_mse_weight)
                 : std::string(),
        options_.residual_lr_scale != 1.0
            ? absl::StrCat(" residual_lr_scale=", options_.residual_lr_scale)
            : std::string(),
        options_.ae_only_steps > 0 ? absl::StrCat(" ae_only_steps=", options_.ae_only_steps)
                                   : std::string(),
        options_.train_base ? absl::StrCat(" train_base text_lm_ratio=", options_.text_lm_ratio,
                                           " base_lr_scale=", options_.base_lr_scale)
                            : std::string(),
        " train_tokens=", train_stream_.size());
  }
  double FlopsPerMicroBatch() const override {
    const int64_t span = options_.span_tokens;
    const int64_t slots =
        static_cast<int64_t>(s_.icae.config.mem_size) *
        PlanSegments(span, s_.icae.config.mem_size, s_.icae.config.compression_rate).num_segments;
    if (s_.cross) {
      return CrossEncoderFlops(*s_.cross, train_.batch, span + slots) +
             IcaeFlops(s_.base->config(), train_.batch, 0, slots + 1 + span);
    }
    return IcaeFlops(s_.base->config(), train_.batch, span + slots, slots + 1 + span);
  }

 private:
  // What one sample trains: autoencoding, continuation from the slots, or (co-training only)
  // plain language modelling on the whole window.
  enum class Objective { kAe, kContinue, kText };

  // Co-training differentiates through a compute-dtype copy of the float32 master weights, made
  // once per micro-batch or validation pass; otherwise none (the frozen base is used).
  std::optional<Transformer> TrainedBase() const {
    std::optional<Transformer> trained;
    if (options_.train_base) {
      const ModelConfig& c = s_.base->config();
      const at::ScalarType dtype = s_.base->weights().embed.scalar_type();
      trained.emplace(c, CastWeights(*s_.master, c.tie_word_embeddings, dtype),
                      Runtime{at::kCPU, dtype});
    }
    return trained;
  }
  const Transformer& Model(const std::optional<Transformer>& trained) const {
    return trained ? *trained : *s_.base;
  }
  // mean((slots - teacher's)^2) / mean(teacher's^2) over the contexts' slots.
  at::Tensor SlotMse(const std::vector<std::vector<int>>& contexts,
                     const std::vector<at::Tensor>& slots) const {
    std::vector<at::Tensor> student, target;
    // Contexts of one segment each (the usual case) go through the teacher as one batch.
    const int64_t segment = teacher_->max_segment_tokens();
    const bool one_segment_each = std::all_of(contexts.begin(), contexts.end(), [&](const auto& c) {
      return static_cast<int64_t>(c.size()) <= segment;
    });
    absl::StatusOr<at::Tensor> batched =
        one_segment_each ? teacher_->CompressSegments(contexts) : absl::StatusOr<at::Tensor>();
    if (one_segment_each && !batched.ok()) {
      throw std::runtime_error(std::string(batched.status().message()));
    }
    for (size_t i = 0; i < contexts.size(); ++i) {
      absl::StatusOr<at::Tensor> t =
          one_segment_each ? absl::StatusOr<at::Tensor>((*batched)[static_cast<int64_t>(i)])
                           : teacher_->CompressSpan(contexts[i]);
      if (!t.ok()) throw std::runtime_error(std::string(t.status().message()));
      if (t->size(0) != slots[i].size(0)) {
        throw std::runtime_error(absl::StrCat(
            "--slot-teacher makes ", t->size(0), " slots of a ", contexts[i].size(),
            "-token context, the cross encoder ", slots[i].size(0), " (another segment plan)"));
      }
      target.push_back(t->to(at::kFloat));
      student.push_back(slots[i].to(at::kFloat));
    }
    at::Tensor s = at::cat(student), t = at::cat(target);
    return (s - t).pow(2).mean() / t.pow(2).mean().clamp_min(1e-12);
  }
  // The AE, LM and FT rows the decoder reads.
  at::Tensor Special() const { return s_.cross ? s_.cross->special : SpecialRows(s_.icae); }
  std::string CrossRecipe() const {
    const CrossTrainables& x = *s_.cross;
    const ModelConfig& e = x.encoder_config;
    return absl::StrCat(
        "cross base=", options_.model, " encoder=", e.num_layers, "x", e.hidden_size, "/",
        e.num_heads, "h/", e.intermediate_size,
        options_.cross_options.encoder_init.empty()
            ? std::string()
            : absl::StrCat(" encoder_init=", options_.cross_options.encoder_init),
        " projector=", ProjectorKindName(x.config.projector),
        x.config.projector == ProjectorKind::kMlp ? absl::StrCat("(", x.config.projector_hidden, ")")
                                                  : std::string(),
        x.config.memory_positions == MemoryPositions::kAppend
            ? std::string()
            : absl::StrCat(" memory_positions=", MemoryPositionsName(x.config.memory_positions)),
        " mem=", x.config.mem_size, " rate=", x.config.compression_rate);
  }

  BatchLoss Loss(const Transformer& model, const std::vector<std::vector<int>>& windows,
                 const std::vector<Objective>& objectives, bool with_teacher = false,
                 double kd_weight = 0, const std::vector<int>& lengths = {},
                 double* teacher_nll = nullptr) {
    // Sample i compresses its window's first span_of(i) tokens; the continuation is the
    // span_tokens that follow them.
    auto span_of = [&](size_t i) { return lengths.empty() ? options_.span_tokens : lengths[i]; };
    const int span = options_.span_tokens;
    std::vector<std::vector<int>> contexts;
    std::vector<size_t> encoded;  // Samples with slots, in the order of `contexts`.
    for (size_t i = 0; i < windows.size(); ++i) {
      if (objectives[i] == Objective::kText) continue;
      contexts.emplace_back(windows[i].begin(), windows[i].begin() + span_of(i));
      encoded.push_back(i);
    }
    std::vector<at::Tensor> encoded_slots;
    if (!contexts.empty()) {
      encoded_slots = s_.cross ? EncodeCrossContexts(*s_.cross, model.dtype(), contexts)
                               : EncodeContexts(model, s_.icae, contexts);
      if (teacher_) last_slot_mse_ = SlotMse(contexts, encoded_slots);
    }
    std::vector<at::Tensor> slots(windows.size());
    for (size_t k = 0; k < encoded.size(); ++k) slots[encoded[k]] = encoded_slots[k];
    const at::Tensor no_slots =
        at::empty({0, model.config().hidden_size}, model.weights().embed.options());
    std::vector<DecoderExample> examples;
    // Teacher: the continuation samples again, each reading its span's text instead of slots.
    std::vector<DecoderExample> teacher_examples;
    std::vector<size_t> taught;
    int64_t enc = 0;
    for (size_t i = 0; i < windows.size(); ++i) {
      const std::vector<int>& w = windows[i];
      if (objectives[i] == Objective::kText) {
        // The first token is input only; every later one is predicted from what precedes it.
        examples.push_back(TargetExample({{PromptPiece::kTokens, {w[0]}}}, 0,
                                         std::vector<int>(w.begin() + 1, w.end()), kIgnore));
        slots[i] = no_slots;
        continue;
      }
      const int n = SlotCount(slots[i]);
      const int len = span_of(i);
      enc += len + n;
      if (objectives[i] == Objective::kContinue) {
        std::vector<int> continuation(w.begin() + len, w.begin() + len + span);
        examples.push_back(ContinuationExample(n, continuation));
        // KV slots compute no output, so the continuation's first token is not predicted from
        // them (500xCompressor): neither the student nor its teacher scores it.
        const bool kv = SlotKindOf(slots[i]) == SlotKind::kKv;
        if (kv) examples.back().labels[n - 1] = kIgnore;
        if (with_teacher) {
          teacher_examples.push_back(
              TargetExample({{PromptPiece::kTokens, std::vector<int>(w.begin(), w.begin() + len)}},
                            0, continuation, kIgnore));
          if (kv) teacher_examples.back().labels[len - 1] = kIgnore;
          taught.push_back(i);
        }
      } else {
        examples.push_back(AutoencodingExample(n, std::vector<int>(w.begin(), w.begin() + len),
                                               model.config().eos_token_id));
      }
    }
    TeacherLogProbs teacher(windows.size());
    if (!teacher_examples.empty()) {
      const TeacherLogProbs t =
          LabelledLogProbs(model, Special(), teacher_examples,
                           std::vector<at::Tensor>(teacher_examples.size(), no_slots));
      for (size_t k = 0; k < taught.size(); ++k) {
        teacher[taught[k]] = t[k];
        if (teacher_nll == nullptr) continue;  // Only validation reports it.
        *teacher_nll += LabelledNll(t[k], teacher_examples[k]);
      }
    }
    BatchLoss loss =
        ExamplesLoss(model, Special(), examples, slots, teacher, kd_weight);
    positions_ = enc + loss.positions;
    return loss;
  }

  PretrainOptions options_;
  TrainOptions train_;
  IcaeSetup s_;
  std::vector<int> train_stream_;
  std::vector<int> valid_stream_;
  WindowSampler sampler_;
  std::mt19937_64 rng_;        // Chooses the objective per sample.
  int64_t micro_batches_ = 0;  // Drawn so far (resumed from the checkpoint).
  int64_t positions_ = 0;
  std::vector<at::Tensor> base_params_;  // Co-training: the master's leaves, in a fixed order.
  std::unique_ptr<Compressor> teacher_;  // --slot-teacher, served as ICAE serves it.
  at::Tensor last_slot_mse_;  // Of the last Loss call's contexts.
};

}  // namespace

void CopySpanIntoContinuation(std::vector<int>& window, int len, int span, std::mt19937_64& rng) {
  const int longest = std::min(32, len / 2);
  if (longest < 8 || span < longest || static_cast<int64_t>(window.size()) < len + span) return;
  const int n = std::uniform_int_distribution<int>(8, longest)(rng);
  const int src = std::uniform_int_distribution<int>(0, len - n)(rng);
  const int dst = len + std::uniform_int_distribution<int>(0, span - n)(rng);
  std::copy(window.begin() + src, window.begin() + src + n, window.begin() + dst);
}

absl::StatusOr<std::unique_ptr<TrainTask>> CreatePretrainTask(const PretrainOptions& options,
                                                              const TrainOptions& train) {
  RETURN_IF_ERROR(ValidateTrainOptions(train));
  RETURN_IF_ERROR(ValidatePretrainOptions(options));
  IcaeSetup setup;
  if (options.cross) {
    ASSIGN_OR_RETURN(setup, LoadCrossSetup(options, train));
  } else {
    ASSIGN_OR_RETURN(setup, LoadIcaeSetup(options, train, options.train_base));
  }
  std::unique_ptr<Compressor> teacher;
  if (!options.slot_teacher.empty()) {
    ASSIGN_OR_RETURN(teacher,
                     Compressor::Load(options.model, options.slot_teacher,
                                      Runtime{at::kCPU, setup.base->weights().embed.scalar_type()}));
    // Its rate may differ (a rate curriculum): each context must then give as many slots.
    if (teacher->is_cross() || teacher->slot_kind() != SlotKind::kEmbedding ||
        teacher->mem_size() != setup.icae.config.mem_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--slot-teacher ", options.slot_teacher, " must be an embedding-slot ICAE adapter with "
          "mem_size ", setup.icae.config.mem_size));
    }
  }
  PretrainOptions o = options;
  if (o.span_tokens == 0)
    o.span_tokens = setup.icae.config.mem_size * setup.icae.config.compression_rate;
  if (o.min_span_tokens > o.span_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("--min-span-tokens ", o.min_span_tokens,
                                                   " exceeds --span-tokens ", o.span_tokens));
  }
  ASSIGN_OR_RETURN(std::vector<int> train_stream,
                   TokenizeCorpus(o.train, *setup.tokenizer, 4 * o.span_tokens, "--train corpus"));
  ASSIGN_OR_RETURN(std::vector<int> valid_stream,
                   TokenizeCorpus(o.valid, *setup.tokenizer, 2 * o.span_tokens, "--valid corpus"));
  return std::unique_ptr<TrainTask>(std::make_unique<PretrainTask>(
      o, train, std::move(setup), std::move(train_stream), std::move(valid_stream),
      std::move(teacher)));
}

}  // namespace icae::train
