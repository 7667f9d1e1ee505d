// The slot cache: keys, LRU eviction by bytes, counters and the metrics it reports.
#include "encoder_service/engine/slot_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace icae::encoder {
namespace {

// Counts what the cache reports (a real EngineMetrics implementation, kept in memory).
class CountingMetrics : public EngineMetrics {
 public:
  void AddCacheLookup(bool hit) override { (hit ? hits : misses)++; }
  void AddCacheEvictions(int64_t count) override { evictions += count; }
  void SetCacheBytes(int64_t b) override { bytes = b; }
  std::atomic<int64_t> hits{0}, misses{0}, evictions{0}, bytes{0};
};

SlotBlock Block(size_t bytes, char fill) {
  SlotBlock block;
  block.dtype = DType::kFloat32;
  block.num_slots = 1;
  block.data = std::make_shared<const std::string>(bytes, fill);
  return block;
}

int64_t Charge(const std::string& key, size_t bytes) {
  return static_cast<int64_t>(bytes + 2 * key.size()) + SlotCache::kEntryOverhead;
}

TEST(SlotCacheKeyTest, DependsOnEncoderIdsAndDtypeOnly) {
  const std::vector<int> ids = {1, 5, 9};
  const std::string key = SlotCacheKey("enc", ids, DType::kFloat32);
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(key, SlotCacheKey("enc", std::vector<int>{1, 5, 9}, DType::kFloat32));
  EXPECT_NE(key, SlotCacheKey("enc2", ids, DType::kFloat32));
  EXPECT_NE(key, SlotCacheKey("enc", ids, DType::kBFloat16));
  EXPECT_NE(key, SlotCacheKey("enc", std::vector<int>{1, 5}, DType::kFloat32));
  EXPECT_NE(key, SlotCacheKey("enc", std::vector<int>{1, 9, 5}, DType::kFloat32));
  EXPECT_NE(key, SlotCacheKey("enc", std::vector<int>{1, 5, 9 + 256}, DType::kFloat32));
}

TEST(SlotCacheTest, HitReturnsTheSameBytesAndCounts) {
  CountingMetrics metrics;
  SlotCache cache(1 << 20, &metrics);
  EXPECT_FALSE(cache.Lookup("a").has_value());
  SlotBlock block = Block(400, 'x');
  cache.Insert("a", block);
  std::optional<SlotBlock> hit = cache.Lookup("a");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->data, block.data);  // shared, not copied
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(metrics.hits, 1);
  EXPECT_EQ(metrics.misses, 1);
  EXPECT_EQ(cache.bytes(), Charge("a", 400));
  EXPECT_EQ(metrics.bytes, cache.bytes());
}

TEST(SlotCacheTest, EvictsLeastRecentlyUsedWithinTheByteBound) {
  CountingMetrics metrics;
  const int64_t one = Charge("k0", 1000);
  SlotCache cache(3 * one, &metrics);
  cache.Insert("k0", Block(1000, '0'));
  cache.Insert("k1", Block(1000, '1'));
  cache.Insert("k2", Block(1000, '2'));
  EXPECT_EQ(cache.entries(), 3);
  ASSERT_TRUE(cache.Lookup("k0").has_value());  // k0 becomes the most recent; k1 is the oldest
  cache.Insert("k3", Block(1000, '3'));
  EXPECT_EQ(cache.entries(), 3);
  EXPECT_FALSE(cache.Lookup("k1").has_value());
  EXPECT_TRUE(cache.Lookup("k0").has_value());
  EXPECT_TRUE(cache.Lookup("k2").has_value());
  EXPECT_TRUE(cache.Lookup("k3").has_value());
  EXPECT_EQ(cache.evictions(), 1);
  EXPECT_EQ(metrics.evictions, 1);
  EXPECT_LE(cache.bytes(), cache.capacity_bytes());
  // A big entry pushes out as many as it needs.
  cache.Insert("big", Block(2500, 'b'));
  EXPECT_LE(cache.bytes(), cache.capacity_bytes());
  EXPECT_TRUE(cache.Lookup("big").has_value());
  EXPECT_EQ(cache.entries(), 1);
  EXPECT_EQ(cache.evictions(), 4);
}

TEST(SlotCacheTest, ReplacingAKeyKeepsOneEntry) {
  SlotCache cache(1 << 20, nullptr);
  cache.Insert("k", Block(100, 'a'));
  cache.Insert("k", Block(200, 'b'));
  EXPECT_EQ(cache.entries(), 1);
  EXPECT_EQ(cache.bytes(), Charge("k", 200));
  EXPECT_EQ((*cache.Lookup("k")->data)[0], 'b');
}

TEST(SlotCacheTest, OversizedEntryIsNotKeptAndZeroCapacityDisables) {
  SlotCache cache(1000, nullptr);
  cache.Insert("huge", Block(5000, 'h'));
  EXPECT_EQ(cache.entries(), 0);
  EXPECT_FALSE(cache.Lookup("huge").has_value());

  CountingMetrics metrics;
  SlotCache disabled(0, &metrics);
  EXPECT_FALSE(disabled.enabled());
  disabled.Insert("k", Block(10, 'k'));
  EXPECT_FALSE(disabled.Lookup("k").has_value());
  EXPECT_EQ(disabled.entries(), 0);
  EXPECT_EQ(metrics.misses, 0);  // a disabled cache counts nothing
}

TEST(SlotCacheTest, ConcurrentUseStaysWithinBounds) {
  CountingMetrics metrics;
  SlotCache cache(50 * Charge("key-00-00", 256), &metrics);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string key = "key-" + std::to_string(t) + "-" + std::to_string(i % 80);
        if (!cache.Lookup(key).has_value()) cache.Insert(key, Block(256, 'c'));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(cache.bytes(), cache.capacity_bytes());
  EXPECT_EQ(cache.hits() + cache.misses(), 2000);
  EXPECT_EQ(metrics.hits + metrics.misses, 2000);
  EXPECT_EQ(metrics.bytes, cache.bytes());
}

}  // namespace
}  // namespace icae::encoder
