// Hooks the engine calls as requests move through it, for metrics. Every method has an empty
// default. Called from the scheduler thread (OnState also from Enqueue callers); implementations
// must be thread-safe and quick. No LibTorch.
#ifndef ICAE_DECODER_SERVICE_ENGINE_ENGINE_OBSERVER_H_
#define ICAE_DECODER_SERVICE_ENGINE_ENGINE_OBSERVER_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace icae::decoder {

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // A request entered the running batch after waiting `queue_seconds`; its prefill covers
  // `prompt_tokens` text positions and `slot_tokens` slot positions, standing for
  // `uncompressed_context_tokens` tokens of uncompressed context.
  virtual void OnAdmitted(double queue_seconds, int prompt_tokens, int slot_tokens,
                          int uncompressed_context_tokens) {}
  // Admission to a request's first token.
  virtual void OnFirstToken(double seconds) {}
  // Between consecutive tokens of one request.
  virtual void OnInterToken(double seconds) {}
  // `count` tokens were generated (EOS excluded).
  virtual void OnTokens(int count) {}
  // One decode step ran over `batch` sequences.
  virtual void OnDecodeStep(int batch) {}
  // A request left the engine: `reason` is eos, length, stop, cancelled or error;
  // `e2e_seconds` is arrival to its last event.
  virtual void OnFinished(absl::string_view reason, double e2e_seconds) {}
  // Scheduler state after a change.
  virtual void OnState(int running, int waiting, int64_t kv_tokens_used) {}
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_ENGINE_OBSERVER_H_
