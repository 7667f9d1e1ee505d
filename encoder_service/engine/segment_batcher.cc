#include "encoder_service/engine/segment_batcher.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace icae::encoder {
namespace {

struct Candidate {
  uint64_t seq;
  const QueuedSegment* segment;
  int distance;  // |length - oldest's length|
};

}  // namespace

void SegmentBatcher::Push(const QueuedSegment& segment) { queue_.emplace(next_seq_++, segment); }

int64_t SegmentBatcher::Remove(uint64_t request) {
  int64_t removed = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->second.request == request) {
      it = queue_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

// The packing rule of the file comment; `seqs` receives the chosen queue keys.
static PlannedBatch PlanWithKeys(const std::map<uint64_t, QueuedSegment>& queue,
                                 const BatchLimits& limits, std::vector<uint64_t>* seqs) {
  PlannedBatch batch;
  if (queue.empty()) return batch;
  auto oldest = queue.begin();
  const int anchor_tokens = oldest->second.tokens;
  std::vector<Candidate> candidates;
  const int window = SegmentBatcher::WindowSize(limits.max_segments);
  for (auto it = std::next(oldest);
       it != queue.end() && static_cast<int>(candidates.size()) < window - 1; ++it) {
    candidates.push_back({it->first, &it->second, std::abs(it->second.tokens - anchor_tokens)});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.distance != b.distance ? a.distance < b.distance : a.seq < b.seq;
  });
  std::vector<std::pair<uint64_t, const QueuedSegment*>> chosen = {
      {oldest->first, &oldest->second}};
  int64_t longest = anchor_tokens;
  for (const Candidate& c : candidates) {
    if (static_cast<int>(chosen.size()) >= limits.max_segments) break;
    const int64_t new_longest = std::max<int64_t>(longest, c.segment->tokens);
    const int64_t padded =
        static_cast<int64_t>(chosen.size() + 1) * (new_longest + limits.mem_size);
    if (padded > limits.max_tokens) {
      batch.full = true;  // more work than one batch can hold
      continue;
    }
    chosen.emplace_back(c.seq, c.segment);
    longest = new_longest;
  }
  if (static_cast<int>(chosen.size()) >= limits.max_segments) batch.full = true;
  std::sort(chosen.begin(), chosen.end(), [](const auto& a, const auto& b) {
    return a.second->tokens != b.second->tokens ? a.second->tokens > b.second->tokens
                                                : a.first < b.first;
  });
  for (const auto& [seq, segment] : chosen) {
    batch.segments.push_back(*segment);
    if (seqs != nullptr) seqs->push_back(seq);
  }
  batch.padded_tokens = static_cast<int64_t>(chosen.size()) * (longest + limits.mem_size);
  return batch;
}

PlannedBatch SegmentBatcher::Plan() const { return PlanWithKeys(queue_, limits_, nullptr); }

absl::Time SegmentBatcher::ReadyAt() const {
  if (queue_.empty()) return absl::InfiniteFuture();
  if (Plan().full) return absl::InfinitePast();
  return queue_.begin()->second.enqueued + limits_.timeout;
}

PlannedBatch SegmentBatcher::Take() {
  std::vector<uint64_t> seqs;
  PlannedBatch batch = PlanWithKeys(queue_, limits_, &seqs);
  for (uint64_t seq : seqs) queue_.erase(seq);
  return batch;
}

}  // namespace icae::encoder
