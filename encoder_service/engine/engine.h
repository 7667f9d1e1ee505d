// The encoder engine: validation, segmenting, the slot cache, dynamic batching of segments across
// requests, and the executor threads that run the model. No gRPC.
//
//   ASSIGN_OR_RETURN(auto engine, Engine::Create(options, std::move(model), &metrics));
//   absl::StatusOr<RequestId> id = engine->Enqueue(std::move(request), [](auto result) {...});
//   ... engine->Cancel(*id, absl::CancelledError("client went away"));
//   engine->Shutdown();
//
// Enqueue validates and tokenizes the spans on the calling thread, serves what it can from the
// slot cache, cuts the rest into segments (ICAE v2 multi-span rule) and queues them. Executor
// threads (EngineOptions::executor_threads) take batches from the queue (see segment_batcher.h),
// run them, and write each segment's slots into its span's buffer in the requested dtype; a
// request's segments may run in different batches. When the last one is done the request's
// callback gets the result (and the computed spans enter the cache).
//
// Deadlines and cancellation: at every batch formation, requests whose deadline has passed lose
// their queued segments (never computed) and end with DEADLINE_EXCEEDED; Cancel does the same at
// once with the given status (DEADLINE_EXCEEDED or CANCELLED). Segments already in a running
// batch finish, their slots are discarded.
//
// Thread-safety: every method may be called from any thread. Callbacks never run under the
// engine's lock.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_ENGINE_H_
#define ICAE_ENCODER_SERVICE_ENGINE_ENGINE_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "encoder_service/engine/engine_metrics.h"
#include "encoder_service/engine/engine_options.h"
#include "encoder_service/engine/engine_types.h"
#include "encoder_service/engine/model_loader.h"
#include "encoder_service/engine/shared_store.h"
#include "encoder_service/engine/slot_cache.h"

namespace icae::encoder {

class Engine {
 public:
  // Validates `options` (alone and against the model) and starts the executor threads, each
  // using `model_threads` LibTorch intra-op threads (0 = every core). `metrics` and `store` may
  // be null and must outlive the engine. With a store, a span missing from the local cache is
  // looked up there (one round trip per request, on the calling thread) before it is computed,
  // and computed spans are written back (in the background; before the result for a request
  // with want_stored).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options,
                                                        EncoderModel model, EngineMetrics* metrics,
                                                        int model_threads = 0,
                                                        SharedSlotStore* store = nullptr);
  // Shutdown().
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // On OK, `done` will be called exactly once, possibly before Enqueue returns (every span a cache
  // hit). Errors (then `done` is never called): InvalidArgument (bad input, see
  // request_validation.h, or a request needing more segments than the whole queue holds),
  // FailedPrecondition (text without a tokenizer, or want_stored without a store), ResourceExhausted (the queue is full: retry
  // later), Unavailable (shut down).
  absl::StatusOr<RequestId> Enqueue(EncodeRequest request, EncodeCallback done);

  // Ends request `id` with `reason` (DeadlineExceeded or Cancelled; anything else counts as
  // cancelled) if it has not ended yet; its queued segments are dropped and counted.
  void Cancel(RequestId id, const absl::Status& reason);

  // Ends every pending request with Unavailable, stops and joins the executors. Idempotent.
  void Shutdown();

  const EngineModelInfo& model_info() const;
  const EngineOptions& options() const;
  const SlotCache& cache() const;
  int64_t queued_segments() const;
  // Requests accepted and not yet ended.
  int64_t pending_requests() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_ENGINE_H_
