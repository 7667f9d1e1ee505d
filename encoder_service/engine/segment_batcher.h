// The queue of segments waiting for the model and the rule that packs them into batches.
//
// Packing: the oldest queued segment always goes (nothing starves). The rest of a window of the
// oldest segments is ordered by how close each one's length is to the oldest one's (then by age),
// and taken greedily while the batch stays within `max_segments` and its padded size
// segments x (longest + mem_size) within `max_tokens`. Similar lengths in one batch mean little
// padding. A batch is "full" when it reached max_segments or a candidate was left out for the
// token budget; a full batch should run at once, a partial one may wait for company until the
// oldest segment has waited `timeout`.
//
// Pure data structure: no threads, no clock (callers pass `now`). Not thread-safe.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_SEGMENT_BATCHER_H_
#define ICAE_ENCODER_SERVICE_ENGINE_SEGMENT_BATCHER_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/time/time.h"

namespace icae::encoder {

struct QueuedSegment {
  uint64_t request = 0;  // owner
  int span = 0;          // index of the span in its request
  int segment = 0;       // index of the segment in its span
  int tokens = 0;        // segment length, >= 1
  absl::Time enqueued;
};

struct BatchLimits {
  int max_segments = 16;
  int64_t max_tokens = 8192;
  int mem_size = 128;
  absl::Duration timeout = absl::Microseconds(2000);
};

struct PlannedBatch {
  std::vector<QueuedSegment> segments;  // ordered by length (longest first)
  int64_t padded_tokens = 0;            // segments x (longest + mem_size)
  bool full = false;
};

class SegmentBatcher {
 public:
  // How many of the oldest segments are considered for one batch.
  static int WindowSize(int max_segments) { return max_segments < 8 ? 64 : 8 * max_segments; }

  explicit SegmentBatcher(BatchLimits limits) : limits_(limits) {}

  void Push(const QueuedSegment& segment);
  // Removes every queued segment of `request`; returns how many there were.
  int64_t Remove(uint64_t request);

  int64_t size() const { return static_cast<int64_t>(queue_.size()); }
  bool empty() const { return queue_.empty(); }
  const BatchLimits& limits() const { return limits_; }

  // The batch the packing rule would take now (empty when the queue is). Does not modify the
  // queue.
  PlannedBatch Plan() const;
  // When the next batch should run: InfiniteFuture when empty, the past when the planned batch
  // is full, else the oldest segment's enqueue time + timeout.
  absl::Time ReadyAt() const;
  // Removes and returns Plan()'s batch.
  PlannedBatch Take();

 private:
  BatchLimits limits_;
  uint64_t next_seq_ = 0;
  std::map<uint64_t, QueuedSegment> queue_;  // by arrival order
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_SEGMENT_BATCHER_H_
