// The measurements behind `icae eval`: a text cut into consecutive spans of N tokens, each span's
// autoencoding (greedy, ae template) scored by corpus BLEU-4 and exact match, and the perplexity
// of each span's continuation (the next N tokens) given (a) the span's tokens, (b) its slots,
// (c) nothing but BOS.
#ifndef ICAE_TOOLS_CLI_EVAL_SPANS_H_
#define ICAE_TOOLS_CLI_EVAL_SPANS_H_

#include <functional>
#include <string>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/dtype.h"
#include "common/model/compressor.h"
#include "common/model/slot_decoder.h"

namespace icae::cli {

// Continuation perplexities over the positions first..last (1-based) of every continuation.
struct PositionBand {
  int first = 0;
  int last = 0;
  double ppl_text = 0;
  double ppl_slots = 0;
  double ppl_none = 0;
};

struct EvalResult {
  int spans = 0;
  int span_tokens = 0;
  double bleu4 = 0;        // [0, 1]
  double exact_match = 0;  // [0, 1]
  double ppl_text = 0;
  double ppl_slots = 0;
  double ppl_none = 0;
  // 1-based continuation position of the first scored token: 2 for KV slots, which predict no
  // first token (every condition then skips it), else 1.
  int first_scored = 1;
  int64_t slot_elements = 0;  // Elements of one span's slots (the first span's).
  std::vector<PositionBand> bands;  // Widths 1, 4, 16, 64, ... from the first position.
  std::vector<std::vector<int>> references;  // The spans.
  std::vector<std::vector<int>> decoded;     // Their greedy reconstructions.
};

// Spans [i*N, (i+1)*N) whose continuation [(i+1)*N, (i+2)*N) is complete, at most `max_spans`
// (0 = all).
std::vector<std::pair<std::vector<int>, std::vector<int>>> CutSpans(const std::vector<int>& ids,
                                                                    int span_tokens, int max_spans);

// `progress(done, total)` is called after each batch of spans (may be empty). With `wire`, every
// span's slots first take the wire codec's round trip in that dtype (as a Compress response
// carries them, e.g. int8 quantized), then are decoded in the compute dtype.
absl::StatusOr<EvalResult> EvaluateSpans(
    const Compressor& compressor, const SlotDecoder& decoder,
    const std::vector<std::pair<std::vector<int>, std::vector<int>>>& spans, int batch,
    const std::function<void(int, int)>& progress,
    std::optional<DType> wire = std::nullopt);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_EVAL_SPANS_H_
