// The decoder engine: continuous batching over one scheduler thread (TensorRT-LLM executor
// style: Enqueue / Cancel / Drain / Shutdown).
//
// The scheduler thread owns the running batch. Between decode steps it drops cancelled or
// expired requests, admits waiting ones (FIFO) while the batch has fewer than max_running
// sequences and their reserved KV positions (context + max_new_tokens each) fit max_kv_tokens,
// prefills admitted contexts, oldest first, at most prefill_chunk_tokens positions per step
// (chunked prefill: a long context arrives over several steps instead of stalling the running
// sequences; a request's first token comes from its last chunk), then runs one DecodeStep over
// every running sequence and hands each new token to its request's sink.
// A sequence that finishes or is cancelled leaves at once and its KV cache is freed. Each row of
// a decode step depends only on its own sequence, so output does not depend on what else runs
// (greedy: identical ids alone or in a full batch; seeded sampling: identical text).
//
// Slot-prefix reuse (prefix_cache.h, --prefix_cache_bytes): the KV of a request's context prefix
// (template tokens, slots and text up to the prompt) is kept after its prefill, and a later
// request with the same prefix continues from it without a copy, prefilling only its question;
// requests admitted together build a shared prefix once. A waiting request holds its token ids
// and slot tensors; its embeddings are built at admission, on the scheduler thread.
//
// Thread-safety: every public method may be called from any thread. Sinks run on the scheduler
// thread without the engine's lock held.
#ifndef ICAE_DECODER_SERVICE_ENGINE_ENGINE_H_
#define ICAE_DECODER_SERVICE_ENGINE_ENGINE_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "decoder_service/engine/engine_observer.h"
#include "decoder_service/engine/engine_options.h"
#include "decoder_service/engine/generation_event.h"

namespace icae {
class SlotDecoder;
}

namespace icae::decoder {

struct GenerateInput;
struct LocalInput;

// A snapshot of the scheduler.
struct EngineState {
  int running = 0;
  int waiting = 0;
  int64_t kv_tokens_used = 0;
  int64_t kv_tokens_capacity = 0;
};

class Engine {
 public:
  // `model` and `observer` (may be null) must outlive the engine. Starts the scheduler thread.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const SlotDecoder* model,
                                                        const EngineOptions& options,
                                                        EngineObserver* observer = nullptr);
  // Shutdown().
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates `input` (see request_validator.h, on the calling thread) and queues it. On success
  // returns the request's id and `sink` will get its events, ending with exactly one final event;
  // on error the sink is never called. UNAVAILABLE while draining or shut down;
  // RESOURCE_EXHAUSTED when more than max_waiting requests would wait.
  absl::StatusOr<uint64_t> Enqueue(GenerateInput input, GenerationSink sink);
  // The same for an in-process request (offline.h; validated by PrepareLocalRequest).
  absl::StatusOr<uint64_t> Enqueue(LocalInput input, GenerationSink sink);

  // Stops request `id` within one decode step: its final event carries `status` (CANCELLED or
  // DEADLINE_EXCEEDED). No effect on a finished or unknown id.
  void Cancel(uint64_t id, absl::Status status);

  // New requests are refused with UNAVAILABLE; accepted ones run to their end.
  void Drain();
  // Drain, then cut every remaining request (final event UNAVAILABLE) and join the scheduler
  // thread. Idempotent.
  void Shutdown();

  EngineState state() const;
  const EngineOptions& options() const;

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_ENGINE_H_
