// The batch packing rule, without threads or a model.
#include "encoder_service/engine/segment_batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace icae::encoder {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

QueuedSegment Seg(uint64_t request, int tokens, absl::Duration age = absl::ZeroDuration(),
                  int segment = 0) {
  QueuedSegment s;
  s.request = request;
  s.segment = segment;
  s.tokens = tokens;
  s.enqueued = kT0 + age;
  return s;
}

BatchLimits Limits(int max_segments, int64_t max_tokens, int mem = 4) {
  BatchLimits limits;
  limits.max_segments = max_segments;
  limits.max_tokens = max_tokens;
  limits.mem_size = mem;
  limits.timeout = absl::Milliseconds(2);
  return limits;
}

TEST(SegmentBatcherTest, EmptyQueueHasNothingReady) {
  SegmentBatcher batcher(Limits(4, 1000));
  EXPECT_TRUE(batcher.empty());
  EXPECT_EQ(batcher.ReadyAt(), absl::InfiniteFuture());
  EXPECT_TRUE(batcher.Take().segments.empty());
}

TEST(SegmentBatcherTest, PartialBatchWaitsForTimeoutFullBatchGoesAtOnce) {
  SegmentBatcher batcher(Limits(3, 1000));
  batcher.Push(Seg(1, 10));
  batcher.Push(Seg(2, 10, absl::Microseconds(100)));
  EXPECT_FALSE(batcher.Plan().full);
  EXPECT_EQ(batcher.ReadyAt(), kT0 + absl::Milliseconds(2));  // oldest + timeout
  batcher.Push(Seg(3, 10, absl::Microseconds(200)));
  EXPECT_TRUE(batcher.Plan().full);
  EXPECT_EQ(batcher.ReadyAt(), absl::InfinitePast());
  PlannedBatch batch = batcher.Take();
  EXPECT_EQ(batch.segments.size(), 3u);
  EXPECT_EQ(batch.padded_tokens, 3 * (10 + 4));
  EXPECT_TRUE(batcher.empty());
}

TEST(SegmentBatcherTest, RespectsSegmentAndPaddedTokenLimits) {
  // 4 slots of memory; budget 100 padded positions: at most 100 / (longest + 4) segments.
  SegmentBatcher batcher(Limits(16, 100));
  for (int i = 0; i < 10; ++i) batcher.Push(Seg(i, 21));  // 25 positions each
  PlannedBatch batch = batcher.Take();
  EXPECT_EQ(batch.segments.size(), 4u);
  EXPECT_EQ(batch.padded_tokens, 100);
  EXPECT_TRUE(batch.full);
  EXPECT_EQ(batcher.size(), 6);
  // A segment-count limit.
  SegmentBatcher small(Limits(2, 100000));
  for (int i = 0; i < 5; ++i) small.Push(Seg(i, 7));
  EXPECT_EQ(small.Take().segments.size(), 2u);
  EXPECT_EQ(small.size(), 3);
}

TEST(SegmentBatcherTest, OldestAlwaysGoesAndSimilarLengthsAreGrouped) {
  SegmentBatcher batcher(Limits(3, 100000));
  batcher.Push(Seg(1, 100));  // oldest
  batcher.Push(Seg(2, 5, absl::Microseconds(1)));
  batcher.Push(Seg(3, 98, absl::Microseconds(2)));
  batcher.Push(Seg(4, 6, absl::Microseconds(3)));
  batcher.Push(Seg(5, 101, absl::Microseconds(4)));
  PlannedBatch first = batcher.Take();
  std::set<uint64_t> requests;
  for (const QueuedSegment& s : first.segments) requests.insert(s.request);
  EXPECT_EQ(requests, (std::set<uint64_t>{1, 3, 5}));
  // Longest first inside a batch; padding counted against the longest.
  EXPECT_EQ(first.segments.front().tokens, 101);
  EXPECT_EQ(first.padded_tokens, 3 * (101 + 4));
  PlannedBatch second = batcher.Take();
  requests.clear();
  for (const QueuedSegment& s : second.segments) requests.insert(s.request);
  EXPECT_EQ(requests, (std::set<uint64_t>{2, 4}));
  EXPECT_EQ(second.padded_tokens, 2 * (6 + 4));
}

TEST(SegmentBatcherTest, LongSegmentsDoNotBlowTheBudgetOfShortOnes) {
  // Budget fits 10 short (20 positions) or 2 long (50): a long one is left for a later batch.
  SegmentBatcher batcher(Limits(16, 200));
  for (int i = 0; i < 6; ++i) batcher.Push(Seg(i, 16));
  batcher.Push(Seg(100, 46));
  PlannedBatch batch = batcher.Take();
  EXPECT_EQ(batch.segments.size(), 6u);
  EXPECT_TRUE(std::all_of(batch.segments.begin(), batch.segments.end(),
                          [](const QueuedSegment& s) { return s.request != 100; }));
  EXPECT_TRUE(batch.full);  // the long one did not fit
  EXPECT_EQ(batcher.size(), 1);
}

TEST(SegmentBatcherTest, RemoveDropsEveryQueuedSegmentOfARequest) {
  SegmentBatcher batcher(Limits(4, 1000));
  for (int g = 0; g < 5; ++g) batcher.Push(Seg(7, 10, absl::ZeroDuration(), g));
  batcher.Push(Seg(8, 10));
  EXPECT_EQ(batcher.Remove(7), 5);
  EXPECT_EQ(batcher.Remove(7), 0);
  EXPECT_EQ(batcher.size(), 1);
  EXPECT_EQ(batcher.Take().segments[0].request, 8u);
}

TEST(SegmentBatcherTest, FifoAmongEqualLengthsAndNoStarvation) {
  SegmentBatcher batcher(Limits(2, 100000));
  for (int i = 0; i < 6; ++i) batcher.Push(Seg(i, 10, absl::Microseconds(i)));
  std::vector<uint64_t> order;
  while (!batcher.empty()) {
    PlannedBatch batch = batcher.Take();
    std::vector<uint64_t> ids;
    for (const QueuedSegment& s : batch.segments) ids.push_back(s.request);
    std::sort(ids.begin(), ids.end());
    order.insert(order.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
}

}  // namespace
}  // namespace icae::encoder
