// Offline generation (the icae CLI, `icae eval`, the trainer's probe, tests) through the decoder
// engine in-process: the one generation loop the service also runs (continuous batching over
// Sequence and DecodeLogits, KV in a pool of blocks), here with a private engine sized for the
// batch so that every input runs at once, prefilled whole, and nothing is ever preempted. Each
// output depends only on its own input (the engine's rows are independent), so a batch gives
// every request the ids it gets alone.
#ifndef ICAE_DECODER_SERVICE_ENGINE_OFFLINE_H_
#define ICAE_DECODER_SERVICE_ENGINE_OFFLINE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/generation_params.h"
#include "decoder_service/engine/generate_input.h"

namespace icae {
class SlotDecoder;
}

namespace icae::decoder {

struct OfflineOutput {
  std::vector<int> ids;  // Generated ids (EOS excluded).
  std::string text;      // Empty without a tokenizer.
  FinishReason finish_reason = FinishReason::kNone;
  // One per step (the EOS step included) when the input asked (LocalInput::keep_step_logits).
  std::vector<std::vector<float>> step_logits;
};

// Called after each accepted token of input `index` with its id and the newly showable text, and
// with id -1 for text released at the end without a new id (held back until EOS); on the engine's
// thread, one call at a time. Returning false cancels that input: its output ends there with
// finish reason CANCELLED.
using OfflineTokenCallback =
    std::function<bool(size_t index, int id, const std::string& text_delta)>;

struct OfflineOptions {
  OfflineTokenCallback on_token;
  // LibTorch intra-op threads of the engine's thread; 0 = those of the calling thread.
  int threads = 0;
};

// Generates for every input, all at once. An input the engine refuses (bad parameters, a prompt
// the model cannot lay out, a context past the model's positions; max_new_tokens must be given)
// fails the whole call with its error, naming the input; so does a failure while generating.
absl::StatusOr<std::vector<OfflineOutput>> GenerateOffline(const SlotDecoder& model,
                                                           std::vector<LocalInput> inputs,
                                                           const OfflineOptions& options = {});

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_OFFLINE_H_
