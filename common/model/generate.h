// The decode step of generation (DecodeLogits). The generation loop around it is the decoder
// engine's (decoder_service/engine), which offline callers drive in-process
// (decoder_service/engine/offline.h).
#ifndef ICAE_COMMON_MODEL_GENERATE_H_
#define ICAE_COMMON_MODEL_GENERATE_H_

#include <ATen/ATen.h>

#include "absl/types/span.h"
#include "common/model/sequence.h"
#include "common/model/transformer.h"

namespace icae {

// One decode step over `sequences` (each has accepted an id and is not finished; each reads only
// its own cache): feeds each its last id and returns float32 CPU logits [batch, vocab]. The step
// the decoder engine's scheduler runs. Throws c10::Error like the Transformer it drives. With `chunk`, another sequence's prompt positions
// ride along the step (Transformer::DecodeStep with a chunk) and *chunk_hidden receives their
// final-normed hidden states; with `chunk_last_logits` the logits of the chunk's last position
// come too, as one more row after the batch's ([batch + 1, vocab]): the head is read once for
// both when a prefill's last chunk picks its first token in the step.
at::Tensor DecodeLogits(const Transformer& transformer, absl::Span<Sequence* const> sequences,
                        const Transformer::StepChunk* chunk = nullptr,
                        at::Tensor* chunk_hidden = nullptr, bool chunk_last_logits = false);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_GENERATE_H_
