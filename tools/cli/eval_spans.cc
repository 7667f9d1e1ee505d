#include "tools/cli/eval_spans.h"

#include "common/codec/tensor_codec.h"

#include <cmath>

#include "common/base/status_macros.h"
#include "common/model/torch_status.h"
#include "decoder_service/engine/offline.h"
#include "tools/cli/eval_bleu.h"

namespace icae::cli {
namespace {

// Negative log-likelihood of each of `targets` when `prompt` is read and positions
// first .. first + targets - 1 predict them.
std::vector<double> Nll(const Transformer& model, const PromptInput& prompt, int64_t first,
                        const std::vector<int>& targets) {
  const int64_t len = prompt.positions();
  KVCache cache = model.NewCache(len);
  at::Tensor hidden = PrefillPrompt(model, prompt, 0, len, cache);  // [len, hidden]
  at::Tensor logits =
      model.Logits(hidden.narrow(0, first, static_cast<int64_t>(targets.size())));  // [n, vocab]
  logits = logits.narrow(-1, 0, model.config().vocab_size);
  at::Tensor ids = at::tensor(std::vector<int64_t>(targets.begin(), targets.end()), at::kLong);
  at::Tensor nll = -at::log_softmax(logits.to(at::kDouble), -1).gather(1, ids.unsqueeze(1));
  nll = nll.reshape({-1}).contiguous();
  return std::vector<double>(nll.data_ptr<double>(), nll.data_ptr<double>() + nll.numel());
}

// Adds per-position NLLs of continuation positions skip, skip + 1, ... into `sums` (sized to the
// continuation length).
double Accumulate(const std::vector<double>& nll, size_t skip, std::vector<double>* sums) {
  double total = 0;
  for (size_t i = 0; i < nll.size(); ++i) {
    (*sums)[skip + i] += nll[i];
    total += nll[i];
  }
  return total;
}

PromptInput EmbedIds(const Transformer& model, const std::vector<int>& ids) {
  PromptInput input;
  input.embeds =
      model.Embed(at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong));
  return input;
}

}  // namespace

std::vector<std::pair<std::vector<int>, std::vector<int>>> CutSpans(const std::vector<int>& ids,
                                                                    int span_tokens,
                                                                    int max_spans) {
  std::vector<std::pair<std::vector<int>, std::vector<int>>> spans;
  const size_t n = span_tokens;
  for (size_t start = 0; start + 2 * n <= ids.size(); start += n) {
    if (max_spans > 0 && static_cast<int>(spans.size()) >= max_spans) break;
    spans.emplace_back(std::vector<int>(ids.begin() + start, ids.begin() + start + n),
                       std::vector<int>(ids.begin() + start + n, ids.begin() + start + 2 * n));
  }
  return spans;
}

absl::StatusOr<EvalResult> EvaluateSpans(
    const Compressor& compressor, const SlotDecoder& decoder,
    const std::vector<std::pair<std::vector<int>, std::vector<int>>>& spans, int batch,
    const std::function<void(int, int)>& progress, std::optional<DType> wire) {
  if (spans.empty()) return absl::InvalidArgumentError("no spans to evaluate");
  EvalResult result;
  result.spans = static_cast<int>(spans.size());
  result.span_tokens = static_cast<int>(spans[0].first.size());
  const Transformer& model = decoder.transformer();
  double nll_text = 0, nll_slots = 0, nll_none = 0, count = 0;
  const size_t cont_len = spans[0].second.size();
  std::vector<double> pos_text(cont_len, 0.0), pos_slots(cont_len, 0.0), pos_none(cont_len, 0.0);
  // KV slots compute no output of their own, so nothing predicts the continuation's first token
  // from them: every condition is then scored from the second token on.
  const size_t skip = compressor.slot_kind() == SlotKind::kKv ? 1 : 0;
  result.first_scored = static_cast<int>(skip) + 1;
  int exact = 0;
  for (size_t begin = 0; begin < spans.size(); begin += batch) {
    const size_t end = std::min(spans.size(), begin + batch);
    std::vector<at::Tensor> slots;
    for (size_t i = begin; i < end; ++i) {
      ASSIGN_OR_RETURN(at::Tensor s, compressor.CompressSpan(spans[i].first));
      if (wire.has_value()) {
        v1::Tensor proto;
        RETURN_IF_ERROR(EncodeTensor(s, ToProtoDataType(*wire), &proto));
        ASSIGN_OR_RETURN(at::Tensor decoded, DecodeTensor(proto, s.numel()));
        s = decoded.to(s.scalar_type());
      }
      if (result.slot_elements == 0) result.slot_elements = s.numel();
      slots.push_back(s);
    }
    std::vector<decoder::LocalInput> inputs;
    for (size_t i = begin; i < end; ++i) {
      ContextPart part;
      part.slots = slots[i - begin];
      part.kind = compressor.slot_kind();
      decoder::LocalInput input;
      input.tmpl = PromptTemplate::kAe;
      input.parts = {part};
      input.params.max_new_tokens = result.span_tokens + 16;
      inputs.push_back(std::move(input));
    }
    ASSIGN_OR_RETURN(std::vector<decoder::OfflineOutput> outputs,
                     decoder::GenerateOffline(decoder, std::move(inputs)));
    for (size_t i = begin; i < end; ++i) {
      result.references.push_back(spans[i].first);
      result.decoded.push_back(outputs[i - begin].ids);
      if (outputs[i - begin].ids == spans[i].first) ++exact;
    }
    RETURN_IF_ERROR(CatchTorch("scoring continuations", [&]() -> absl::Status {
      c10::InferenceMode guard;
      for (size_t i = begin; i < end; ++i) {
        const std::vector<int>& span = spans[i].first;
        const std::vector<int>& cont = spans[i].second;
        const int64_t n = static_cast<int64_t>(span.size()), k = static_cast<int64_t>(skip);
        const std::vector<int> targets(cont.begin() + k, cont.end());
        // (a) span + continuation: position n - 1 + k predicts cont[k].
        std::vector<int> both = span;
        both.insert(both.end(), cont.begin(), cont.end() - 1);
        nll_text += Accumulate(Nll(model, EmbedIds(model, both), n - 1 + k, targets), skip,
                               &pos_text);
        // (b) slots + continuation: the last slot (embedding slots) or cont[0] (KV) predicts
        // the first target.
        ContextPart part;
        part.slots = slots[i - begin];
        part.kind = compressor.slot_kind();
        std::vector<int> prompt(cont.begin(), cont.end() - 1);
        ASSIGN_OR_RETURN(PromptInput embeds,
                         decoder.BuildPrompt(PromptTemplate::kRaw, {part}, prompt));
        nll_slots += Accumulate(Nll(model, embeds, part.positions() - 1 + k, targets), skip,
                                &pos_slots);
        // (c) BOS + continuation.
        std::vector<int> none = {model.config().bos_token_id};
        none.insert(none.end(), cont.begin(), cont.end() - 1);
        nll_none += Accumulate(Nll(model, EmbedIds(model, none), k, targets), skip, &pos_none);
        count += targets.size();
      }
      return absl::OkStatus();
    }));
    if (progress) progress(static_cast<int>(end), result.spans);
  }
  result.bleu4 = CorpusBleu(result.decoded, result.references);
  result.exact_match = static_cast<double>(exact) / result.spans;
  result.ppl_text = std::exp(nll_text / count);
  result.ppl_slots = std::exp(nll_slots / count);
  result.ppl_none = std::exp(nll_none / count);
  // Perplexity per band of continuation positions [1, 2), [2, 5), [5, 17), ... (1-based).
  for (size_t lo = skip, width = 1; lo < cont_len; lo += width, width *= 4) {
    const size_t hi = std::min(cont_len, lo + width);
    PositionBand band;
    band.first = static_cast<int>(lo) + 1;
    band.last = static_cast<int>(hi);
    double t = 0, s = 0, z = 0;
    for (size_t i = lo; i < hi; ++i) t += pos_text[i], s += pos_slots[i], z += pos_none[i];
    const double n = static_cast<double>((hi - lo) * spans.size());
    band.ppl_text = std::exp(t / n);
    band.ppl_slots = std::exp(s / n);
    band.ppl_none = std::exp(z / n);
    result.bands.push_back(band);
  }
  return result;
}

}  // namespace icae::cli
