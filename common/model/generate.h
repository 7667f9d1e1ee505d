// Batched generation for offline use (the icae CLI, tests, benchmarks): every request is
// prefilled, then all decode together, one token per sequence per step, each with its own KV
// cache; a finished sequence leaves the batch without disturbing the others. The decoder service
// runs its own scheduler (continuous batching, chunked prefill, prefix reuse) over the same
// Sequence and the same decode step (DecodeLogits).
#ifndef ICAE_COMMON_MODEL_GENERATE_H_
#define ICAE_COMMON_MODEL_GENERATE_H_

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/sequence.h"
#include "common/model/slot_decoder.h"

namespace icae {

struct GenerationInput {
  PromptInput prompt;  // From SlotDecoder::BuildPrompt.
  GenerationParams params;
};

struct GenerationOutput {
  std::vector<int> ids;  // Generated ids (EOS excluded).
  std::string text;      // Empty without a tokenizer.
  FinishReason finish_reason = FinishReason::kNone;
  std::vector<std::vector<float>> step_logits;  // Filled only when asked (tests).
};

// Called after each accepted token of sequence `index` with the newly showable text; returning
// false cancels that sequence.
using TokenCallback = std::function<bool(size_t index, int id, const std::string& text_delta)>;

struct GenerateOptions {
  TokenCallback on_token;
  bool keep_step_logits = false;
};

// One decode step over `sequences` (each has accepted an id and is not finished; each reads only
// its own cache): feeds each its last id and returns float32 CPU logits [batch, vocab]. The one
// step that both the offline loop (GenerateBatch) and the decoder service's scheduler run. Throws
// c10::Error like the Transformer it drives. With `chunk`, another sequence's prompt positions
// ride along the step (Transformer::DecodeStep with a chunk) and *chunk_hidden receives their
// final-normed hidden states.
at::Tensor DecodeLogits(const Transformer& transformer, absl::Span<Sequence* const> sequences,
                        const Transformer::StepChunk* chunk = nullptr,
                        at::Tensor* chunk_hidden = nullptr);

absl::StatusOr<std::vector<GenerationOutput>> GenerateBatch(
    const SlotDecoder& model, const std::vector<GenerationInput>& inputs,
    const GenerateOptions& options = {});

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_GENERATE_H_
