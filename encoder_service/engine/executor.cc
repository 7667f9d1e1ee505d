// The encoder's executor threads: each takes the next planned batch of segments from the
// batcher, runs it through the model, fills the requests' spans and finishes complete requests.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "encoder_service/engine/engine_impl.h"
#include "encoder_service/engine/segment_runner.h"

namespace icae::encoder {

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

}  // namespace icae::encoder
