// The ICAE v2 multi-span rule: a context of L tokens is cut into
// num_segments = ceil(L / (mem_size * rate)) segments of segment_length = ceil(L / num_segments)
// tokens (the last may be shorter); each segment is compressed independently into mem_size slots.
#ifndef ICAE_COMMON_MODEL_SEGMENTER_H_
#define ICAE_COMMON_MODEL_SEGMENTER_H_

#include <utility>
#include <vector>

namespace icae {

struct SegmentPlan {
  int num_segments = 0;
  int segment_length = 0;
  std::vector<std::pair<int, int>> ranges;  // [begin, end) token offsets, in order.
};

// `total_tokens` > 0, `mem_size` > 0, `rate` > 0.
SegmentPlan PlanSegments(int total_tokens, int mem_size, int rate);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_SEGMENTER_H_
