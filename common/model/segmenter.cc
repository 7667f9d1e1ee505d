#include "common/model/segmenter.h"

#include <algorithm>

namespace icae {

SegmentPlan PlanSegments(int total_tokens, int mem_size, int rate) {
  SegmentPlan plan;
  if (total_tokens <= 0 || mem_size <= 0 || rate <= 0) return plan;
  const long long capacity = static_cast<long long>(mem_size) * rate;
  plan.num_segments = static_cast<int>((total_tokens + capacity - 1) / capacity);
  plan.segment_length = (total_tokens + plan.num_segments - 1) / plan.num_segments;
  for (int i = 0; i < plan.num_segments; ++i) {
    const int begin = i * plan.segment_length;
    const int end = std::min(total_tokens, begin + plan.segment_length);
    if (begin >= end) break;  // ceil arithmetic can leave no tokens for a last segment.
    plan.ranges.emplace_back(begin, end);
  }
  return plan;
}

}  // namespace icae
