// Finishing encoder requests: building a result from its spans' slots, ending a request (a
// result or an error) and delivering completions outside the lock, with their cache inserts and
// shared-store writes.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "encoder_service/engine/engine_impl.h"

namespace icae::encoder {

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

}  // namespace icae::encoder
