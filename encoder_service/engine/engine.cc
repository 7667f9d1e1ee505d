#include "encoder_service/engine/engine.h"

#include <algorithm>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/segmenter.h"
#include "encoder_service/engine/request_validation.h"
#include "encoder_service/engine/segment_batcher.h"
#include "encoder_service/engine/segment_runner.h"

namespace icae::encoder {
namespace {

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

DropReason ReasonOf(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDeadlineExceeded ? DropReason::kDeadline
                                                              : DropReason::kCancelled;
}

}  // namespace

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

absl::StatusOr<RequestId> Engine::Impl::Enqueue(EncodeRequest request, EncodeCallback done) {
  const EngineModelInfo& info = model.info;
  RequestLimits limits;
  limits.max_spans = options.max_spans;
  limits.max_input_tokens = options.max_input_tokens;
  limits.vocab_size = info.vocab_size;
  if (request.want_stored && store == nullptr) {
    return absl::FailedPreconditionError(
        "return_handles needs a shared slot store: start the encoder with --slot_store "
        "redis://HOST:PORT");
  }
  ASSIGN_OR_RETURN(std::vector<std::vector<int>> span_ids,
                   PrepareSpans(request, limits, model.tokenizer.get()));

  auto state = std::make_shared<RequestState>();
  state->done = std::move(done);
  state->enqueued = absl::Now();
  state->deadline = request.deadline;
  state->wire = request.slot_dtype.value_or(info.compute_dtype);
  state->want_stored = request.want_stored;
  state->write_store = store != nullptr && (!request.bypass_cache || request.want_stored);
  state->spans.resize(span_ids.size());
  int64_t response_bytes = 0;
  for (size_t i = 0; i < span_ids.size(); ++i) {
    SpanState& span = state->spans[i];
    span.id = std::move(request.spans[i].id);
    span.ids = std::move(span_ids[i]);
    span.ranges =
        PlanSegments(static_cast<int>(span.ids.size()), info.mem_size, info.compression_rate)
            .ranges;
    // Slot bytes plus a generous allowance for the span's framing, id and metadata.
    response_bytes += (SlotBytes(state->wire) + ScaleBytes(state->wire)) *
                          static_cast<int64_t>(span.ranges.size()) +
                      static_cast<int64_t>(span.id.size()) + 256;
  }
  if (options.max_response_bytes > 0 && response_bytes > options.max_response_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spans: the slots would take about ", response_bytes,
                     " bytes, more than max_message_bytes ", options.max_response_bytes,
                     "; send fewer or shorter spans, a smaller slot_dtype (BFLOAT16, INT8)"));
  }
  const bool use_cache = cache.enabled() && !request.bypass_cache;
  for (SpanState& span : state->spans) {
    if (!use_cache && !state->write_store) continue;
    const std::string key = SlotCacheKey(info.encoder_id, span.ids, state->wire);
    if (state->write_store) span.store_key = SharedSlotStore::KeyFor(key);
    if (use_cache) {
      span.cache_key = key;
      if (std::optional<SlotBlock> hit = cache.Lookup(span.cache_key)) {
        span.cache_hit = true;
        span.slots = *std::move(hit);
      }
    }
  }
  if (store != nullptr && !request.bypass_cache) FetchFromStore(*state, use_cache);
  for (const SpanState& span : state->spans) {
    if (!span.cache_hit && !span.store_hit) {
      state->remaining_segments += static_cast<int64_t>(span.ranges.size());
    }
  }
  if (state->remaining_segments > options.max_queue_segments) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spans: the request needs ", state->remaining_segments,
        " segments but the queue holds at most max_queue_segments ", options.max_queue_segments));
  }
  // Allocated outside the lock: the result bytes every segment writes into.
  for (SpanState& span : state->spans) {
    if (span.cache_hit || span.store_hit) continue;
    span.buffer = std::make_shared<std::string>(
        static_cast<size_t>(SlotBytes(state->wire)) * span.ranges.size(), '\0');
    if (state->wire == DType::kInt8) {
      span.scales = std::make_shared<std::string>(
          static_cast<size_t>(ScaleBytes(state->wire)) * span.ranges.size(), '\0');
    }
  }

  std::vector<Completion> completions;
  RequestId id;
  {
    absl::MutexLock lock(&mu);
    if (shutdown) return absl::UnavailableError("the encoder is shutting down");
    if (batcher.size() + state->remaining_segments > options.max_queue_segments) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "queue full: ", batcher.size(), " segments waiting + ", state->remaining_segments,
          " would exceed max_queue_segments ", options.max_queue_segments, "; retry later"));
    }
    id = next_id++;
    state->id = id;
    if (state->remaining_segments == 0) {
      FinishLocked(*state, EncodeResult(), &completions);
    } else {
      requests.emplace(id, state);
      for (size_t s = 0; s < state->spans.size(); ++s) {
        const SpanState& span = state->spans[s];
        if (span.cache_hit || span.store_hit) continue;
        for (size_t g = 0; g < span.ranges.size(); ++g) {
          batcher.Push(QueuedSegment{id, static_cast<int>(s), static_cast<int>(g),
                                     span.ranges[g].second - span.ranges[g].first,
                                     state->enqueued});
        }
      }
      metrics->SetQueueSegments(batcher.size());
      work_cv.SignalAll();
    }
  }
  RunCompletions(completions);
  return id;
}

void Engine::Impl::FetchFromStore(RequestState& state, bool use_cache) {
  std::vector<size_t> asked;
  std::vector<std::string> keys;
  for (size_t i = 0; i < state.spans.size(); ++i) {
    if (state.spans[i].cache_hit) continue;
    asked.push_back(i);
    keys.push_back(state.spans[i].store_key);
  }
  if (keys.empty()) return;
  std::vector<std::optional<StoredSpan>> found = store->Fetch(keys, state.wire);
  const int64_t mem = model.info.mem_size;
  for (size_t j = 0; j < asked.size() && j < found.size(); ++j) {
    SpanState& span = state.spans[asked[j]];
    if (!found[j]) continue;
    const StoredSpan& stored = *found[j];
    const int64_t segments = static_cast<int64_t>(span.ranges.size());
    // The store checked dtype, shape and lengths against this encoder (shared_store.h); what it
    // cannot know is the span: the key names its tokens, the segment plan must agree too.
    if (stored.tokens != static_cast<int>(span.ids.size()) || stored.segments != segments ||
        stored.slots.num_slots != segments * mem) {
      ICAE_LOG(WARNING) << "slot store entry " << span.store_key
                        << " does not match its span; computing it";
      continue;
    }
    span.store_hit = true;
    span.slots = stored.slots;
    if (use_cache) cache.Insert(span.cache_key, span.slots);
  }
}

EncodeResult Engine::Impl::BuildResult(RequestState& request, Completion* completion) {
  EncodeResult result;
  if (request.first_start != absl::InfiniteFuture()) {
    result.queue_seconds = absl::ToDoubleSeconds(request.first_start - request.enqueued);
    result.compute_seconds = absl::ToDoubleSeconds(request.last_end - request.first_start);
  }
  result.spans.reserve(request.spans.size());
  completion->want_stored = request.want_stored;
  for (SpanState& span : request.spans) {
    const bool computed = !span.cache_hit && !span.store_hit;
    if (computed) {
      span.slots.dtype = request.wire;
      span.slots.num_slots = static_cast<int64_t>(span.ranges.size()) * model.info.mem_size;
      span.slots.data = std::move(span.buffer);
      span.slots.scales = std::move(span.scales);
      if (!span.cache_key.empty()) completion->cache_inserts.emplace_back(span.cache_key, span.slots);
    }
    SpanResult out;
    out.id = span.id;
    out.slots = span.slots;
    out.tokens = static_cast<int>(span.ids.size());
    out.segments = static_cast<int>(span.ranges.size());
    out.cache_hit = span.cache_hit;
    out.store_hit = span.store_hit;
    out.stored = span.store_hit && request.want_stored;  // the fetch renewed it
    out.store_key = span.store_key;
    // Computed spans go to the store; with handles, so do local-cache hits (the store may never
    // have seen them, or lost them).
    if (request.write_store && (computed || (request.want_stored && span.cache_hit))) {
      completion->store_spans.push_back(result.spans.size());
      completion->store_writes.emplace_back(span.store_key,
                                            StoredSpan{span.slots, out.tokens, out.segments});
    }
    result.spans.push_back(std::move(out));
  }
  return result;
}

void Engine::Impl::FinishLocked(RequestState& request, absl::StatusOr<EncodeResult> result,
                                std::vector<Completion>* out) {
  if (request.finished) return;
  request.finished = true;
  Completion completion;
  completion.done = std::move(request.done);
  if (result.ok()) {
    completion.result = BuildResult(request, &completion);
  } else {
    const int64_t dropped = batcher.Remove(request.id);
    if (dropped > 0) {
      const absl::StatusCode code = result.status().code();
      if (code == absl::StatusCode::kDeadlineExceeded || code == absl::StatusCode::kCancelled) {
        metrics->AddDropped(ReasonOf(result.status()), dropped);
      }
      metrics->SetQueueSegments(batcher.size());
    }
    completion.result = std::move(result);
  }
  out->push_back(std::move(completion));
  requests.erase(request.id);  // may destroy `request`: last statement
}

void Engine::Impl::RunCompletions(std::vector<Completion>& completions) {
  for (Completion& c : completions) {
    for (auto& [key, block] : c.cache_inserts) cache.Insert(key, std::move(block));
    if (c.result.ok() && !c.store_writes.empty()) {
      if (c.want_stored) {
        // A handle must name stored slots: written before the answer (those the store refused
        // are answered inline).
        const std::vector<bool> written = store->Write(c.store_writes);
        for (size_t i = 0; i < c.store_spans.size() && i < written.size(); ++i) {
          c.result->spans[c.store_spans[i]].stored = written[i];
        }
      } else {
        store->WriteLater(std::move(c.store_writes));
      }
    }
    if (c.result.ok()) {
      int64_t tokens = 0, slots = 0;
      for (const SpanResult& span : c.result->spans) {
        tokens += span.tokens;
        slots += span.slots.num_slots;
      }
      metrics->AddCompleted(static_cast<int64_t>(c.result->spans.size()), tokens, slots);
    }
    c.done(std::move(c.result));
  }
  completions.clear();
}

void Engine::Impl::DropExpiredLocked(absl::Time now, std::vector<Completion>* out) {
  std::vector<std::shared_ptr<RequestState>> expired;
  for (const auto& [id, request] : requests) {
    if (request->deadline <= now) expired.push_back(request);
  }
  for (const auto& request : expired) {
    FinishLocked(*request,
                 absl::DeadlineExceededError("deadline passed while the request was queued"), out);
  }
}

void Engine::Impl::Cancel(RequestId id, const absl::Status& reason) {
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu);
    auto it = requests.find(id);
    if (it == requests.end()) return;
    std::shared_ptr<RequestState> request = it->second;
    absl::Status status = reason;
    if (status.ok() || (status.code() != absl::StatusCode::kDeadlineExceeded &&
                        status.code() != absl::StatusCode::kCancelled)) {
      status = absl::CancelledError(reason.ok() ? "cancelled" : reason.message());
    }
    FinishLocked(*request, status, &completions);
  }
  RunCompletions(completions);
}

void Engine::Impl::ExecutorLoop() {
  ConfigureModelThreads(model_threads);
  std::vector<Completion> completions;
  for (;;) {
    PlannedBatch batch;
    std::vector<std::shared_ptr<RequestState>> owners;
    absl::Time start;
    {
      absl::MutexLock lock(&mu);
      for (;;) {
        if (shutdown) break;
        const absl::Time now = absl::Now();
        DropExpiredLocked(now, &completions);
        if (batcher.empty()) {
          if (!completions.empty()) break;  // deliver them before sleeping
          work_cv.Wait(&mu);
          continue;
        }
        const absl::Time ready = batcher.ReadyAt();
        if (now < ready) {
          if (!completions.empty()) break;
          work_cv.WaitWithDeadline(&mu, ready);
          continue;
        }
        batch = batcher.Take();
        start = now;
        break;
      }
      if (shutdown && batch.segments.empty() && completions.empty()) return;
      for (const QueuedSegment& segment : batch.segments) {
        std::shared_ptr<RequestState>& owner = requests.at(segment.request);
        owner->first_start = std::min(owner->first_start, start);
        owners.push_back(owner);
      }
      if (!batch.segments.empty()) metrics->SetQueueSegments(batcher.size());
    }
    RunCompletions(completions);
    if (batch.segments.empty()) continue;

    std::vector<SegmentJob> jobs;
    jobs.reserve(batch.segments.size());
    for (size_t i = 0; i < batch.segments.size(); ++i) {
      const QueuedSegment& segment = batch.segments[i];
      metrics->ObserveSegmentQueueTime(absl::ToDoubleSeconds(start - segment.enqueued));
      RequestState& owner = *owners[i];
      SpanState& span = owner.spans[segment.span];
      const auto [begin, end] = span.ranges[segment.segment];
      const int64_t mem = model.info.mem_size;
      SegmentJob job;
      job.ids = absl::MakeConstSpan(span.ids).subspan(begin, end - begin);
      job.wire = owner.wire;
      job.out = span.buffer->data();
      job.scales = span.scales == nullptr ? nullptr : reinterpret_cast<float*>(span.scales->data());
      job.span_slots = mem * static_cast<int64_t>(span.ranges.size());
      job.first_slot = mem * segment.segment;
      jobs.push_back(job);
    }
    const absl::Status status = RunSegmentBatch(*model.compressor, jobs);
    const absl::Time end = absl::Now();
    metrics->ObserveBatch(static_cast<int>(jobs.size()), batch.padded_tokens,
                          absl::ToDoubleSeconds(end - start));
    if (!status.ok()) {
      ICAE_LOG(ERROR) << "batch of " << jobs.size() << " segments: " << status;
    }
    {
      absl::MutexLock lock(&mu);
      for (const std::shared_ptr<RequestState>& owner : owners) {
        if (owner->finished) continue;  // cancelled meanwhile: its slots are discarded
        owner->last_end = std::max(owner->last_end, end);
        if (!status.ok()) {
          FinishLocked(*owner, status, &completions);
        } else if (--owner->remaining_segments == 0) {
          FinishLocked(*owner, EncodeResult(), &completions);
        }
      }
    }
    RunCompletions(completions);
  }
}

void Engine::Impl::Shutdown() {
  absl::MutexLock serialize(&shutdown_mu);
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu);
    if (!shutdown) {
      shutdown = true;
      std::vector<std::shared_ptr<RequestState>> pending;
      for (const auto& [id, request] : requests) pending.push_back(request);
      for (const auto& request : pending) {
        FinishLocked(*request, absl::UnavailableError("the encoder is shutting down"),
                     &completions);
      }
      work_cv.SignalAll();
    }
  }
  RunCompletions(completions);
  for (std::thread& t : executors) {
    if (t.joinable()) t.join();
  }
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options,
                                                       EncoderModel model, EngineMetrics* metrics,
                                                       int model_threads, SharedSlotStore* store) {
  RETURN_IF_ERROR(options.Validate());
  RETURN_IF_ERROR(options.ValidateForModel(model.info.max_segment_tokens(), model.info.mem_size));
  if (model.compressor == nullptr) return absl::InvalidArgumentError("no model loaded");
  auto impl = std::make_unique<Impl>(options, std::move(model), metrics, model_threads, store);
  impl->metrics->SetQueueSegments(0);
  impl->metrics->SetCacheBytes(0);
  Impl* raw = impl.get();
  for (int i = 0; i < options.executor_threads; ++i) {
    raw->executors.emplace_back([raw] { raw->ExecutorLoop(); });
  }
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() { Shutdown(); }

absl::StatusOr<RequestId> Engine::Enqueue(EncodeRequest request, EncodeCallback done) {
  return impl_->Enqueue(std::move(request), std::move(done));
}
void Engine::Cancel(RequestId id, const absl::Status& reason) { impl_->Cancel(id, reason); }
void Engine::Shutdown() { impl_->Shutdown(); }
const EngineModelInfo& Engine::model_info() const { return impl_->model.info; }
const EngineOptions& Engine::options() const { return impl_->options; }
const SlotCache& Engine::cache() const { return impl_->cache; }

int64_t Engine::queued_segments() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->batcher.size();
}

int64_t Engine::pending_requests() const {
  absl::MutexLock lock(&impl_->mu);
  return static_cast<int64_t>(impl_->requests.size());
}

}  // namespace icae::encoder
