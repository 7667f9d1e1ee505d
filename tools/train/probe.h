// icae-train probe: how much of a span can the frozen decoder read back from K slots at all?
//
// For each held-out span, K slots (of the adapter's kind: vectors, or every layer's keys and
// values for a KV adapter) are optimised directly (Adam through the frozen decoder,
// teacher forcing on the serving layout: the ae template [slots][AE] span EOS with an adapter, the
// raw template [slots] span EOS without one) and scored by teacher-forced token accuracy, greedy
// reconstruction BLEU-4 and exact match. With an adapter, its own encoder's slots for the same
// spans are scored beside them. The optimised figure is the decoder's capacity: the upper bound
// every encoder of that many slots is measured against; a list of K gives the ratio curve.
//
// With --objective continuation the question is the other half of the ICAE claim: can K slots
// make the frozen decoder continue a span as well as its text does? Each span is followed by a
// continuation of the same length; the slots are optimised to match, at every continuation
// position, the decoder's prediction when it reads the span's text (KL(text || slots), the
// distillation term alone: the continuation's own tokens are never a training signal, so the
// slots cannot learn them). The rows report the continuation perplexity from the slots beside the
// text's: the optimised row is the lowest gap any encoder of K slots can reach on this decoder.
// Slots fitted on the very positions they are scored on know which continuation follows; with
// --fit-tokens N they are fitted on its first N tokens and scored on the rest, a tighter bound.
#ifndef ICAE_TOOLS_TRAIN_PROBE_H_
#define ICAE_TOOLS_TRAIN_PROBE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/flags.h"

namespace icae::train {

struct ProbeOptions {
  std::string model;      // Frozen base: HF directory with tokenizer.model.
  std::string adapter;    // Optional: its AE token, and its slots scored beside.
  std::string file;       // Plain UTF-8 text, cut into consecutive spans.
  int span_tokens = 0;    // 0: the adapter's mem_size * rate, or 128 without one.
  std::string slots;      // Comma-separated K values; empty: the adapter's count (or 32).
  int spans = 4;          // Spans probed (optimised together, independently).
  int skip_spans = 0;     // Spans skipped at the start of the file.
  int steps = 300;        // Adam steps per K.
  double lr = 0.05;       // Adam learning rate on the slot vectors.
  bool normed = false;    // Slots = final RMSNorm(z): what an ICAE encoder can emit.
  bool blend = false;     // Also score chunk sums of token embeddings (no optimisation).
  double blend_norm = 0;  // > 0: rescale each blend slot to this L2 norm.
  int threads = 2;
  int64_t seed = 1;
  std::string json;  // Also write the rows as JSON here.
  std::string objective = "reconstruct";  // Or "continuation" (above).
  // Continuation: the slots are fitted on the first fit_tokens continuation positions and scored
  // on the rest (0: fitted and scored on all), so that the bound does not rest on slots that know
  // which continuation they are scored on.
  int fit_tokens = 0;
  // Start the optimised slots from the adapter's (at its slot count; the row is "moved").
  bool from_adapter = false;
};

struct ProbeRow {
  std::string source;  // "optimised", "moved" (from the adapter's), "adapter" or "blend"
  int slots = 0;
  double tokens_per_slot = 0;
  double initial_loss = 0;  // Mean teacher-forced loss before optimising (optimised rows).
  double loss = 0;          // Mean teacher-forced loss (nats per labelled position).
  double accuracy = 0;      // Teacher-forced argmax accuracy over span tokens + EOS.
  double bleu4 = 0;         // Greedy reconstruction, corpus BLEU-4 over the spans.
  int exact = 0;            // Spans reconstructed exactly.
  // --objective continuation: the loss and accuracy are the continuation's (KL to the text's
  // prediction; argmax == the true next token), ppl its perplexity from these slots; no BLEU.
  double ppl = 0;
};

struct ProbeResult {
  int spans = 0;
  int span_tokens = 0;
  bool continuation = false;
  double text_ppl = 0;  // Continuation perplexity when the decoder reads the spans' text.
  std::vector<ProbeRow> rows;
};

void RegisterProbeFlags(FlagSet& flags, ProbeOptions* options);

// Progress lines go to `log` (may be null).
absl::StatusOr<ProbeResult> RunProbe(const ProbeOptions& options, std::FILE* log);

// The table `icae-train probe` prints.
std::string FormatProbeTable(const ProbeOptions& options, const ProbeResult& result);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_PROBE_H_
