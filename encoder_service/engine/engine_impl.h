// The encoder engine's internals, shared by its translation units (engine.cc: intake, cache and
// store lookups, cancellation and shutdown; executor.cc: the executor threads' batch loop;
// results.cc: finishing requests and delivering their results). Not for use outside
// encoder_service/engine.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_ENGINE_IMPL_H_
#define ICAE_ENCODER_SERVICE_ENGINE_ENGINE_IMPL_H_

#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "encoder_service/engine/engine.h"
#include "encoder_service/engine/segment_batcher.h"

namespace icae::encoder {

// One span of a request: its ids and segment plan, its cache and store keys, and its slots once
// found or computed.
struct SpanState {
  std::string id;
  std::vector<int> ids;
  std::vector<std::pair<int, int>> ranges;  // segment [begin, end) offsets into `ids`
  std::string cache_key;                    // empty: not cached
  std::string store_key;                    // empty: no shared store for this span
  bool cache_hit = false;
  bool store_hit = false;
  SlotBlock slots;                      // set on a hit, or when complete
  std::shared_ptr<std::string> buffer;  // The wire layout (SlotGeometry) in `wire`
  std::shared_ptr<std::string> scales;  // kInt8: its row scales, float32
};

// One request from Enqueue until its callback runs.
struct RequestState {
  RequestId id = 0;
  EncodeCallback done;
  absl::Time enqueued;
  absl::Time deadline;
  DType wire = DType::kFloat32;
  bool want_stored = false;
  bool write_store = false;  // computed spans go to the shared store
  std::vector<SpanState> spans;
  int64_t remaining_segments = 0;  // not yet computed
  bool finished = false;
  absl::Time first_start = absl::InfiniteFuture();  // first batch holding one of its segments
  absl::Time last_end = absl::InfinitePast();       // end of the latest such batch
};

// A callback to run once the lock is released, plus the spans to add to the cache and the store
// (`store_spans[i]` is the result span `store_writes[i]` holds).
struct Completion {
  EncodeCallback done;
  absl::StatusOr<EncodeResult> result;
  std::vector<std::pair<std::string, SlotBlock>> cache_inserts;
  std::vector<std::pair<std::string, StoredSpan>> store_writes;
  std::vector<size_t> store_spans;
  bool want_stored = false;
};

inline DropReason ReasonOf(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDeadlineExceeded ? DropReason::kDeadline
                                                              : DropReason::kCancelled;
}

struct Engine::Impl {
  Impl(const EngineOptions& opts, EncoderModel m, EngineMetrics* met, int threads,
       SharedSlotStore* shared)
      : options(opts),
        model(std::move(m)),
        metrics(met != nullptr ? met : &null_metrics),
        model_threads(threads),
        store(shared),
        cache(opts.cache_bytes, metrics),
        batcher(BatchLimits{opts.max_batch_segments, opts.max_batch_tokens, model.info.mem_size,
                            absl::Microseconds(opts.batch_timeout_us)}) {}

  absl::StatusOr<RequestId> Enqueue(EncodeRequest request, EncodeCallback done);
  void Cancel(RequestId id, const absl::Status& reason);
  void Shutdown();
  void ExecutorLoop();

  // Ends `request` with `result` (a result or an error). Drops its queued segments.
  void FinishLocked(RequestState& request, absl::StatusOr<EncodeResult> result,
                    std::vector<Completion>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void DropExpiredLocked(absl::Time now, std::vector<Completion>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  EncodeResult BuildResult(RequestState& request, Completion* completion);
  void RunCompletions(std::vector<Completion>& completions);
  // Serves what the shared store holds among `state`'s spans that missed the local cache.
  void FetchFromStore(RequestState& state, bool use_cache);
  // Bytes of one segment's slot elements, and of its scales (kInt8 only).
  int64_t SlotBytes(DType wire) const {
    return static_cast<int64_t>(model.info.mem_size) * model.info.slots.elements_per_slot() *
           static_cast<int64_t>(ItemSize(wire));
  }
  int64_t ScaleBytes(DType wire) const {
    return wire == DType::kInt8 ? static_cast<int64_t>(model.info.mem_size) *
                                      model.info.slots.blocks() * 4
                                : 0;
  }

  const EngineOptions options;
  const EncoderModel model;
  EngineMetrics null_metrics;
  EngineMetrics* const metrics;
  const int model_threads;
  SharedSlotStore* const store;  // may be null
  SlotCache cache;

  mutable absl::Mutex mu;
  absl::CondVar work_cv;  // new segments or shutdown
  SegmentBatcher batcher ABSL_GUARDED_BY(mu);
  std::unordered_map<RequestId, std::shared_ptr<RequestState>> requests ABSL_GUARDED_BY(mu);
  RequestId next_id ABSL_GUARDED_BY(mu) = 1;
  bool shutdown ABSL_GUARDED_BY(mu) = false;
  std::vector<std::thread> executors;
  absl::Mutex shutdown_mu;  // serializes Shutdown calls (joining)
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_ENGINE_IMPL_H_
