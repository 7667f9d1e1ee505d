#include "tools/train/probe.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/io/mapped_file.h"
#include "common/model/compressor.h"
#include "common/model/ops.h"
#include "common/model/slot_decoder.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/offline.h"
#include "nlohmann/json.hpp"
#include "tools/cli/eval_bleu.h"
#include "tools/train/icae_layout.h"
#include "tools/train/optimizer.h"

namespace icae::train {
namespace {

absl::StatusOr<std::vector<int>> ParseSlotCounts(const std::string& flag) {
  std::vector<int> out;
  for (absl::string_view piece : absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    int k = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(piece), &k) || k <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--slots: '", piece, "' is not a positive slot count"));
    }
    out.push_back(k);
  }
  return out;
}

class Prober {
 public:
  // `continuations` (--objective continuation): the tokens that follow each span.
  Prober(const ProbeOptions& o, const SlotDecoder& decoder, std::vector<std::vector<int>> spans,
         std::vector<std::vector<int>> continuations, std::FILE* log)
      : o_(o),
        decoder_(decoder),
        model_(decoder.transformer()),
        spans_(std::move(spans)),
        continuations_(std::move(continuations)),
        log_(log),
        tmpl_(decoder.has_adapter() ? PromptTemplate::kAe : PromptTemplate::kRaw) {}

  bool continuation() const { return !continuations_.empty(); }

  // --objective continuation: the decoder's predictions over each continuation when it reads its
  // span's text (the distillation targets: the fitted positions, and the scored ones) and the
  // perplexity of the scored positions.
  absl::StatusOr<double> ReadTheText() {
    return CatchTorch("reading the spans' text", [&]() -> absl::StatusOr<double> {
      const at::Tensor no_slots =
          at::empty({0, model_.config().hidden_size}, model_.weights().embed.options());
      auto text_examples = [&](Part part) {
        std::vector<DecoderExample> examples;
        for (size_t i = 0; i < spans_.size(); ++i) {
          examples.push_back(
              TargetExample({{PromptPiece::kTokens, spans_[i]}}, 0, continuations_[i], kIgnore));
          KeepPart(examples.back(), static_cast<int>(spans_[i].size()) - 1, part);
        }
        return examples;
      };
      const std::vector<DecoderExample> scored = text_examples(Part::kScore);
      teacher_score_ = LabelledLogProbs(model_, decoder_.special_embeddings(), scored,
                                        std::vector<at::Tensor>(scored.size(), no_slots));
      teacher_fit_ = o_.fit_tokens == 0
                         ? teacher_score_
                         : LabelledLogProbs(model_, decoder_.special_embeddings(),
                                            text_examples(Part::kFit),
                                            std::vector<at::Tensor>(scored.size(), no_slots));
      double nll = 0;
      int64_t count = 0;
      for (size_t i = 0; i < scored.size(); ++i) {
        int64_t labels = 0;
        nll += LabelledNll(teacher_score_[i], scored[i], &labels);
        count += labels;
      }
      return std::exp(nll / std::max<int64_t>(1, count));
    });
  }

  // Scores fixed slots (one [K, hidden] tensor per span).
  absl::StatusOr<ProbeRow> Score(const std::string& source, const std::vector<at::Tensor>& slots) {
    ProbeRow row;
    row.source = source;
    row.slots = SlotCount(slots[0]);
    row.tokens_per_slot = static_cast<double>(spans_[0].size()) / row.slots;
    {
      at::NoGradGuard no_grad;
      // With a teacher (continuation) the mean loss is the cross-entropy (kd_weight 0) and the
      // distillation term comes beside it.
      BatchLoss loss = ExamplesLoss(model_, decoder_.special_embeddings(),
                                    Examples(row.slots, Part::kScore), slots, teacher_score_);
      row.accuracy = static_cast<double>(loss.correct) / std::max<int64_t>(1, loss.labelled);
      if (continuation()) {
        row.ppl = std::exp(loss.mean_loss.item<double>());
        row.loss = loss.kl_sum / std::max<int64_t>(1, loss.kl_count);
        return row;  // Nothing to reconstruct.
      }
      row.loss = loss.mean_loss.item<double>();
    }
    std::vector<decoder::LocalInput> inputs;
    for (const at::Tensor& s : slots) {
      ContextPart part;
      part.slots = s.detach();
      part.kind = SlotKindOf(s);
      decoder::LocalInput input;
      input.tmpl = tmpl_;
      input.parts = {part};
      input.params.max_new_tokens = static_cast<int>(spans_[0].size()) + 8;
      inputs.push_back(std::move(input));
    }
    ASSIGN_OR_RETURN(std::vector<decoder::OfflineOutput> outputs,
                     decoder::GenerateOffline(decoder_, std::move(inputs)));
    std::vector<std::vector<int>> decoded;
    for (size_t i = 0; i < outputs.size(); ++i) {
      decoded.push_back(outputs[i].ids);
      if (outputs[i].ids == spans_[i]) ++row.exact;
    }
    row.bleu4 = cli::CorpusBleu(decoded, spans_);
    return row;
  }

  // No optimisation: slot j is the sum of the token embeddings of the j-th of K equal chunks of
  // its span (final-normed with --normed, rescaled to L2 norm --blend-norm when set): what a
  // decoder reads when slots are token blends, at the scale of tokens or of encoder outputs.
  absl::StatusOr<ProbeRow> Blend(int k) {
    std::vector<at::Tensor> slots;
    RETURN_IF_ERROR(CatchTorch("blending chunks", [&]() -> absl::Status {
      at::NoGradGuard no_grad;
      const ModelConfig& c = model_.config();
      for (const std::vector<int>& span : spans_) {
        const int64_t n = span.size();
        std::vector<at::Tensor> rows;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t begin = j * n / k, end = (j + 1) * n / k;
          std::vector<int64_t> ids(span.begin() + begin, span.begin() + std::max(begin + 1, end));
          rows.push_back(model_.Embed(at::tensor(ids, at::kLong)).to(at::kFloat).sum(0));
        }
        at::Tensor s = at::stack(rows, 0);
        if (o_.normed) {
          s = RmsNorm(s, model_.weights().final_norm.to(at::kFloat), c.rms_norm_eps);
        }
        if (o_.blend_norm > 0) s = s / s.norm(2, -1, true) * o_.blend_norm;
        slots.push_back(s);
      }
      return absl::OkStatus();
    }));
    return Score("blend", slots);
  }

  // Optimises K slots per span from a random start and scores them.
  // `start`: one slot tensor per span to start from (--from-adapter), or empty (random).
  absl::StatusOr<ProbeRow> Optimise(int k, const std::vector<at::Tensor>& start = {}) {
    std::vector<at::Tensor> final_slots;
    double initial = 0;
    RETURN_IF_ERROR(CatchTorch("optimising slots", [&]() -> absl::Status {
      const ModelConfig& c = model_.config();
      at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(o_.seed + k));
      const double embed_std = model_.weights().embed.to(at::kFloat).std().item<double>();
      const int64_t spans = static_cast<int64_t>(spans_.size());
      // The adapter's kind: KV slots are [layers, 2, kv_heads, K, head_dim] per span.
      const bool kv = decoder_.slot_kind() == SlotKind::kKv;
      at::Tensor z =
          !start.empty() ? at::stack(start).to(at::kFloat)
          : kv           ? at::randn({spans, c.num_layers, 2, c.num_kv_heads, k, c.head_dim}, gen)
                         : at::randn({spans, k, c.hidden_size}, gen) * embed_std;
      z.requires_grad_(true);
      AdamW adam({z}, AdamWConfig{0.9, 0.999, 1e-8, 0.0});
      const std::vector<DecoderExample> examples = Examples(k, Part::kFit);
      at::Tensor final_norm = model_.weights().final_norm.to(at::kFloat);
      auto shape = [&](const at::Tensor& x) {
        return o_.normed ? RmsNorm(x, final_norm, c.rms_norm_eps) : x;
      };
      for (int step = 0; step < o_.steps; ++step) {
        at::Tensor slots = shape(z);
        std::vector<at::Tensor> per_span;
        for (int64_t i = 0; i < slots.size(0); ++i) per_span.push_back(slots[i]);
        // Continuation: the distillation term alone (ce_weight 0).
        BatchLoss loss = ExamplesLoss(model_, decoder_.special_embeddings(), examples, per_span,
                                      teacher_fit_, continuation() ? 1.0 : 0.0,
                                      continuation() ? 0.0 : 1.0);
        if (step == 0) initial = loss.mean_loss.item<double>();
        adam.ZeroGrad();
        loss.mean_loss.backward();
        adam.Step(o_.lr);
        if (log_ != nullptr && ((step + 1) % 50 == 0 || step + 1 == o_.steps)) {
          std::fprintf(log_, "probe K=%d step %d/%d loss %.4f acc %.3f\n", k, step + 1, o_.steps,
                       loss.mean_loss.item<double>(),
                       static_cast<double>(loss.correct) / std::max<int64_t>(1, loss.labelled));
          std::fflush(log_);
        }
      }
      at::NoGradGuard no_grad;
      at::Tensor slots = shape(z).detach();
      for (int64_t i = 0; i < slots.size(0); ++i) final_slots.push_back(slots[i]);
      return absl::OkStatus();
    }));
    ASSIGN_OR_RETURN(ProbeRow row, Score("optimised", final_slots));
    row.initial_loss = initial;
    return row;
  }

 private:
  // Continuation positions the slots are fitted on (the first --fit-tokens) and scored on (the
  // rest); without --fit-tokens both are all of them.
  enum class Part { kFit, kScore };

  // Keeps the labels of `part` in `e`, whose continuation token j is labelled at index first + j.
  // KV slots predict nothing themselves: their first continuation token is never labelled.
  void KeepPart(DecoderExample& e, int first, Part part) const {
    for (int i = first; i < e.length(); ++i) {
      const int j = i - first;
      const bool fitted = o_.fit_tokens == 0 || j < o_.fit_tokens;
      const bool scored = o_.fit_tokens == 0 || j >= o_.fit_tokens;
      if (!(part == Part::kFit ? fitted : scored)) e.labels[i] = kIgnore;
    }
    if (decoder_.slot_kind() == SlotKind::kKv) e.labels[first] = kIgnore;
  }

  // Reconstruct: the adapter's ae layout (or raw), span then EOS. Continuation: the raw layout
  // with the continuation, as `icae eval` scores it, labelled on `part`.
  std::vector<DecoderExample> Examples(int k, Part part) const {
    std::vector<DecoderExample> out;
    for (size_t i = 0; i < spans_.size(); ++i) {
      if (continuation()) {
        out.push_back(ContinuationExample(k, continuations_[i]));
        KeepPart(out.back(), k - 1, part);
        continue;
      }
      out.push_back(TargetExample(LayoutPrompt(tmpl_, 1, {}, decoder_.template_tokens()), k,
                                  spans_[i], model_.config().eos_token_id));
    }
    return out;
  }

  const ProbeOptions& o_;
  const SlotDecoder& decoder_;
  const Transformer& model_;
  std::vector<std::vector<int>> spans_;
  std::vector<std::vector<int>> continuations_;
  // Continuation: the text's log-probabilities per span at the fitted and the scored positions.
  TeacherLogProbs teacher_fit_, teacher_score_;
  std::FILE* log_;
  PromptTemplate tmpl_;
};

}  // namespace

void RegisterProbeFlags(FlagSet& flags, ProbeOptions* o) {
  flags.String("model", &o->model, "frozen base model: HF directory with tokenizer.model");
  flags.String("adapter", &o->adapter,
               "ICAE adapter: its AE token lays out [slots][AE] span, and its own slots are "
               "scored beside the optimised ones (without: [slots] span)");
  flags.String("file", &o->file, "plain UTF-8 text, cut into consecutive spans");
  flags.Int("span-tokens", &o->span_tokens,
            "tokens per span (0 = the adapter's mem_size * rate, or 128)");
  flags.String("slots", &o->slots,
               "slot counts to probe, comma-separated (empty = the adapter's, or 32)");
  flags.Int("spans", &o->spans, "spans probed");
  flags.Int("skip-spans", &o->skip_spans, "spans skipped at the start of the file");
  flags.Int("steps", &o->steps, "Adam steps on the slot vectors");
  flags.Double("lr", &o->lr, "Adam learning rate");
  flags.Bool("normed", &o->normed,
             "constrain slots to the final RMSNorm's output (what an ICAE encoder emits)");
  flags.Bool("blend", &o->blend,
             "also score slots that are sums of their chunk's token embeddings (no training)");
  flags.Double("blend-norm", &o->blend_norm,
               "rescale each blend slot to this L2 norm (0 = as summed)");
  flags.Int("threads", &o->threads, "intra-op threads");
  flags.Int64("seed", &o->seed, "initialisation seed");
  flags.String("json", &o->json, "also write the rows as JSON to this file");
  flags.Int("fit-tokens", &o->fit_tokens,
            "continuation: fit the slots on the first N continuation tokens and score the rest "
            "(slots fitted on the tokens they are scored on know what those ask of the span; "
            "0 = fit and score all)");
  flags.Bool("from-adapter", &o->from_adapter,
             "start the optimised slots from the adapter's own (at its slot count; row 'moved'), "
             "not at random: with --fit-tokens, whether moving them for some continuation "
             "positions helps the others");
  flags.String("objective", &o->objective,
               "reconstruct (the span from its slots) or continuation (the span's continuation "
               "as the decoder predicts it from the text: distillation, no labels)");
}

absl::StatusOr<ProbeResult> RunProbe(const ProbeOptions& o, std::FILE* log) {
  auto bad = [](const char* flag, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", why));
  };
  if (o.model.empty()) return bad("model", "is required");
  if (o.file.empty()) return bad("file", "is required");
  if (o.span_tokens < 0) return bad("span-tokens", "must be >= 0");
  if (o.spans <= 0) return bad("spans", "must be positive");
  if (o.skip_spans < 0) return bad("skip-spans", "must be >= 0");
  if (o.steps < 0) return bad("steps", "must be >= 0");
  if (!(o.lr > 0)) return bad("lr", "must be positive");
  if (o.blend_norm < 0) return bad("blend-norm", "must be >= 0");
  const bool continuation = o.objective == "continuation";
  if (!continuation && o.objective != "reconstruct") {
    return bad("objective", absl::StrCat("'", o.objective, "' is not reconstruct or continuation"));
  }
  if (continuation && o.blend) return bad("blend", "applies to --objective reconstruct");
  if (o.fit_tokens != 0 && !continuation) {
    return bad("fit-tokens", "needs --objective continuation");
  }
  if (o.from_adapter && (o.adapter.empty() || o.normed)) {
    return bad("from-adapter", "needs --adapter and no --normed (the adapter's slots as they are)");
  }
  ASSIGN_OR_RETURN(std::vector<int> counts, ParseSlotCounts(o.slots));
  const Runtime runtime{at::kCPU, at::kFloat};
  ASSIGN_OR_RETURN(std::unique_ptr<SlotDecoder> decoder,
                   SlotDecoder::Load(o.model, o.adapter, runtime));
  if (decoder->tokenizer() == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(o.model, " has no tokenizer.model to cut the text"));
  }
  if (decoder->slot_kind() == SlotKind::kKv && (o.normed || o.blend)) {
    return bad(o.normed ? "normed" : "blend", "applies to embedding slots, not a KV adapter's");
  }
  std::unique_ptr<Compressor> compressor;
  if (!o.adapter.empty()) {
    ASSIGN_OR_RETURN(compressor, Compressor::Load(o.model, o.adapter, runtime));
  }
  const int n = o.span_tokens > 0 ? o.span_tokens
                : compressor      ? compressor->max_segment_tokens()
                                  : 128;
  if (o.fit_tokens < 0 || o.fit_tokens >= n - 1) {
    return bad("fit-tokens", absl::StrCat(o.fit_tokens, " must be in [0, ", n - 2,
                                          "]: some continuation tokens must be left to score"));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.file));
  ASSIGN_OR_RETURN(std::vector<int> ids, EncodeLines(*decoder->tokenizer(), text));
  // Consecutive windows: the span, then (continuation) as many tokens again.
  const int64_t window = continuation ? 2 * n : n;
  const int64_t need = static_cast<int64_t>(o.skip_spans + o.spans) * window;
  if (static_cast<int64_t>(ids.size()) < need) {
    return bad("file", absl::StrCat("'", o.file, "' has ", ids.size(), " tokens; ", o.skip_spans,
                                    " + ", o.spans, " windows of ", window, " need ", need));
  }
  std::vector<std::vector<int>> spans, continuations;
  for (int i = o.skip_spans; i < o.skip_spans + o.spans; ++i) {
    auto begin = ids.begin() + static_cast<int64_t>(i) * window;
    spans.emplace_back(begin, begin + n);
    if (continuation) continuations.emplace_back(begin + n, begin + 2 * n);
  }
  std::vector<at::Tensor> adapter_slots;
  if (compressor) {
    for (const std::vector<int>& span : spans) {
      ASSIGN_OR_RETURN(at::Tensor s, compressor->CompressSpan(span));
      adapter_slots.push_back(s);
    }
  }
  if (counts.empty()) {
    counts.push_back(compressor ? SlotCount(adapter_slots[0]) : 32);
  }
  ProbeResult result;
  result.spans = o.spans;
  result.span_tokens = n;
  result.continuation = continuation;
  Prober prober(o, *decoder, spans, std::move(continuations), log);
  if (continuation) {
    ASSIGN_OR_RETURN(result.text_ppl, prober.ReadTheText());
  }
  if (compressor) {
    ASSIGN_OR_RETURN(ProbeRow row, prober.Score("adapter", adapter_slots));
    result.rows.push_back(row);
  }
  for (int k : counts) {
    if (o.blend) {
      ASSIGN_OR_RETURN(ProbeRow blend, prober.Blend(k));
      result.rows.push_back(blend);
    }
    // --from-adapter: the adapter's own slots moved (at its slot count).
    const bool from_adapter = o.from_adapter && k == SlotCount(adapter_slots[0]);
    ASSIGN_OR_RETURN(ProbeRow row, prober.Optimise(k, from_adapter ? adapter_slots
                                                                   : std::vector<at::Tensor>()));
    if (from_adapter) row.source = "moved";
    result.rows.push_back(row);
  }
  if (!o.json.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const ProbeRow& r : result.rows) {
      rows.push_back({{"source", r.source},
                      {"slots", r.slots},
                      {"tokens_per_slot", r.tokens_per_slot},
                      {"initial_loss", r.initial_loss},
                      {"loss", r.loss},
                      {"accuracy", r.accuracy},
                      {"bleu4", r.bleu4},
                      {"exact", r.exact},
                      {"ppl", r.ppl}});
    }
    nlohmann::json j = {{"model", o.model},
                        {"adapter", o.adapter},
                        {"file", o.file},
                        {"spans", o.spans},
                        {"skip_spans", o.skip_spans},
                        {"span_tokens", n},
                        {"steps", o.steps},
                        {"lr", o.lr},
                        {"normed", o.normed},
                        {"objective", o.objective},
                        {"fit_tokens", o.fit_tokens},
                        {"from_adapter", o.from_adapter},
                        {"text_ppl", result.text_ppl},
                        {"rows", rows}};
    RETURN_IF_ERROR(WriteStringToFile(o.json, j.dump(2) + "\n"));
  }
  return result;
}

std::string FormatProbeTable(const ProbeOptions& o, const ProbeResult& r) {
  std::string out = absl::StrFormat(
      "probe: %s%s; %d spans x %d tokens of %s (from span %d); %d Adam steps, lr %g%s\n", o.model,
      o.adapter.empty() ? "" : absl::StrCat(" + ", o.adapter), r.spans, r.span_tokens, o.file,
      o.skip_spans, o.steps, o.lr, o.normed ? ", slots final-normed" : "");
  if (o.blend && o.blend_norm > 0)
    absl::StrAppendFormat(&out, "blend slots rescaled to norm %g\n", o.blend_norm);
  auto start = [](const ProbeRow& row) {
    return row.source == "adapter" || row.source == "blend"
               ? std::string("-")
               : absl::StrFormat("%.4f", row.initial_loss);
  };
  if (r.continuation) {
    absl::StrAppendFormat(&out,
                          "continuation of %d tokens after each span%s: ppl %.3f reading the text\n"
                          "%-6s %-9s %-10s %-11s %-8s %-8s %-9s %s\n",
                          r.span_tokens,
                          o.fit_tokens > 0 ? absl::StrFormat(" (slots fitted on its first %d, "
                                                             "scored on the rest)", o.fit_tokens)
                                           : std::string(),
                          r.text_ppl, "slots", "tok/slot", "source", "start KL",
                          "KL", "TF acc", "ppl", "vs text");
    for (const ProbeRow& row : r.rows) {
      absl::StrAppendFormat(&out, "%-6d %-9.2f %-10s %-11s %-8.4f %-8.4f %-9.3f %+.1f%%\n",
                            row.slots, row.tokens_per_slot, row.source, start(row), row.loss,
                            row.accuracy, row.ppl, 100.0 * (row.ppl / r.text_ppl - 1));
    }
    return out;
  }
  absl::StrAppendFormat(&out, "%-6s %-9s %-10s %-11s %-8s %-8s %-8s %s\n", "slots", "tok/slot",
                        "source", "start loss", "loss", "TF acc", "BLEU-4", "exact");
  for (const ProbeRow& row : r.rows) {
    absl::StrAppendFormat(
        &out, "%-6d %-9.2f %-10s %-11s %-8.4f %-8.4f %-8.4f %d/%d\n", row.slots,
        row.tokens_per_slot, row.source, start(row), row.loss, row.accuracy, row.bleu4, row.exact,
        r.spans);
  }
  return out;
}

}  // namespace icae::train
