// The encoder engine: intake (validation, cache and shared-store lookups, queueing segments),
// cancellation, shutdown and the public Engine methods. The executor loop is in executor.cc,
// results in results.cc, the shared state in engine_impl.h.
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
#include "encoder_service/engine/engine_impl.h"
#include "encoder_service/engine/request_validation.h"
#include "encoder_service/engine/segment_batcher.h"
#include "encoder_service/engine/segment_runner.h"

namespace icae::encoder {

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
