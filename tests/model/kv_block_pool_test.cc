// The decoder's KV pool (common/model/kv_block_pool.h): caches in blocks take and give back
// blocks, and decode through them exactly as through caches with tensors of their own.
#include "common/model/kv_block_pool.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/model/transformer.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using testing::Expected;
using testing::MaxAbsDiff;
using testing::TestData;

// Caches in a KvBlockPool's blocks: writes across block edges read back, moving hands the blocks
// over, destroying and shrinking give them back, and a pool short of blocks refuses (no crash).
TEST(KvBlockPoolTest, CachesTakeAndGiveBackBlocks) {
  auto model = Transformer::Load(TestData("tiny-llama"), Runtime{});
  ASSERT_OK(model);
  const Transformer& m = **model;
  const ModelConfig& config = m.config();
  c10::InferenceMode guard;
  auto pool = m.NewBlockPool(6, 4);
  EXPECT_EQ(pool->free_blocks(), 6);
  EXPECT_EQ(pool->block_bytes(), 4 * KVCache::BytesPerPosition(config, m.dtype()));
  {
    KVCache cache = m.NewCache(pool, 5);
    EXPECT_EQ(cache.capacity(), 8);
    EXPECT_EQ(cache.bytes(), 2 * pool->block_bytes());
    EXPECT_EQ(pool->free_blocks(), 4);
    const int64_t kvh = config.num_kv_heads, d = config.head_dim;
    at::Tensor k = at::randn({config.num_layers, kvh, 7, d}), v = at::randn_like(k);
    for (auto [from, n] : {std::pair<int64_t, int64_t>{0, 3}, {3, 4}}) {  // 3, then 4 across an edge.
      for (int l = 0; l < config.num_layers; ++l) {
        cache.Write(l, k[l].narrow(1, from, n), v[l].narrow(1, from, n));
      }
      cache.Advance(n);
    }
    for (int l = 0; l < config.num_layers; ++l) {
      EXPECT_TRUE(at::equal(cache.Keys(l, 0, 7), k[l]));
      EXPECT_TRUE(at::equal(cache.Values(l, 2, 6), v[l].narrow(1, 2, 4)));
    }
    KVCache moved = std::move(cache);
    EXPECT_EQ(moved.length(), 7);
    EXPECT_EQ(pool->free_blocks(), 4);
    moved.Reserve(2);  // 9 positions: a third block.
    EXPECT_EQ(pool->free_blocks(), 3);
    EXPECT_TRUE(at::equal(moved.Keys(0, 0, 7), k[0]));  // Grown without a copy: still there.
    EXPECT_THROW(moved.SetCapacity(6), c10::Error);     // Below what it holds.
    moved.SetCapacity(7);
    EXPECT_EQ(moved.capacity(), 8);
    EXPECT_EQ(pool->free_blocks(), 4);
    try {
      KVCache too_big = m.NewCache(pool, 5 * 4 + 1);
      ADD_FAILURE() << "a cache larger than the free blocks was made";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("fewer than 6 free blocks"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(pool->free_blocks(), 4);
  }
  EXPECT_EQ(pool->free_blocks(), 6);
  // Blocks come in order and go back so: a freed cache's run of ids passes on as a run.
  std::vector<int32_t> first;
  {
    KVCache a = m.NewCache(pool, 12);
    first = a.blocks();
    EXPECT_EQ(first, (std::vector<int32_t>{0, 1, 2}));
  }
  KVCache b = m.NewCache(pool, 12);
  EXPECT_EQ(b.blocks(), first);
}

// Decoding with every cache in blocks (the prefix too; blocks of 4 positions, so every chunk and
// step crosses edges) equals decoding with caches of their own tensors: with the CPU kernels bit
// for bit, on the ATen path (which gathers the blocks) within 1e-6.
TEST(KvBlockPoolTest, BlockCachesDecodeAsOwnTensors) {
  testing::ForEachDecodeModel([](const Transformer& m, bool kernels_on) {
    const int64_t vocab = m.config().vocab_size;
    at::Tensor ids = Expected("tiny-llama", "input_ids").view({-1}) % vocab;
    const int64_t n = ids.size(0), p = 9;
    auto pool = m.NewBlockPool(64, 4);
    // A shared prefix of p positions, two sequences after it, 3 of a third riding along a step,
    // then 4 decode steps of all three.
    auto run = [&](bool blocks) {
      auto cache = [&](int64_t capacity, std::shared_ptr<const KVCache> prefix = nullptr) {
        return blocks ? m.NewCache(pool, capacity, std::move(prefix))
                      : m.NewCache(capacity, std::move(prefix));
      };
      std::vector<at::Tensor> out;
      KVCache prefix_cache = cache(p);
      out.push_back(m.Logits(m.Prefill(m.Embed(ids.narrow(0, 0, p)), prefix_cache)));
      auto prefix = std::make_shared<const KVCache>(std::move(prefix_cache));
      KVCache a = cache(2, prefix), b = cache(2, prefix), c = cache(1);
      out.push_back(m.Logits(m.Prefill(m.Embed(ids.narrow(0, p, n - p)), a)));
      out.push_back(m.Logits(m.Prefill(m.Embed(ids.narrow(0, p, 3)), b)));
      out.push_back(m.Logits(m.Prefill(m.Embed(ids.narrow(0, 0, 5)), c)));
      at::Tensor chunk_hidden;
      std::vector<KVCache*> two = {&a, &b};
      out.push_back(m.Logits(m.DecodeStep(m.Embed(at::tensor({7, 8}, at::kLong) % vocab), two,
                                          {m.Embed(ids.narrow(0, 5, 3)), &c}, &chunk_hidden)));
      out.push_back(m.Logits(chunk_hidden));
      std::vector<KVCache*> three = {&a, &b, &c};
      for (int64_t step = 0; step < 4; ++step) {
        at::Tensor tokens = at::tensor({11 + step, 40 + 3 * step, 3 + step}, at::kLong) % vocab;
        out.push_back(m.Logits(m.DecodeStep(m.Embed(tokens), three)));
      }
      return out;
    };
    const std::vector<at::Tensor> own = run(false), in_blocks = run(true);
    ASSERT_EQ(pool->free_blocks(), 64);  // Every block given back.
    for (size_t i = 0; i < own.size(); ++i) {
      if (kernels_on && i >= 4) {
        EXPECT_TRUE(at::equal(in_blocks[i], own[i])) << "output " << i;
      } else {
        EXPECT_LT(MaxAbsDiff(in_blocks[i], own[i]), 1e-6) << "output " << i;
      }
    }
  });
}

}  // namespace
}  // namespace icae
