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
  // Scheduler state after a change. kv_tokens_used counts the running sequences' reservations and
  // the positions of every kept or still-read shared prefix.
  virtual void OnState(int running, int waiting, int64_t kv_tokens_used) {}
  // Slot-prefix reuse: a request's context prefix was found (`hit`, `reused_positions` not
  // prefilled again) or not (it prefills the prefix and keeps it for later requests).
  virtual void OnPrefixLookup(bool hit, int64_t reused_positions) {}
  // `positions` context positions were prefilled: in a step of their own, or `carried` by a
  // decode step of the running sequences (EngineOptions::mixed_step_rows).
  virtual void OnPrefill(int64_t positions, bool carried) {}
  // A running request was preempted (KV budget spent): its KV freed, it will resume.
  virtual void OnPreempted() {}
  // The prefix cache after a change: bytes and entries kept, entries dropped since the last call.
  virtual void OnPrefixCache(int64_t bytes, int entries, int64_t evicted) {}
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_ENGINE_OBSERVER_H_
