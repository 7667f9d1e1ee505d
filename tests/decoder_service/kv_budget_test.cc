// The decoder engine's KV budget under a flood (no gRPC): many requests of every kind (distinct
// contexts, questions sharing a context prefix, greedy and seeded sampling) against a pool that
// holds only a few at once. Every request completes with exactly the ids it gets alone, through
// preemptions and resumptions, and the budget is never passed.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "tests/decoder_service/engine_test_util.h"

namespace icae::decoder {
namespace {

using KvBudgetTest = EngineTest;

GenerateInput Mixed(int i) {
  GenerateInput input = EngineTest::Varied(i % 5, 24 + (i % 7) * 4);
  if (i % 3 == 0) input.prompt_ids = {30 + i, 7};  // Same context as others, another question.
  if (i % 4 == 1) {
    input.params.sampling.temperature = 0.8f;
    input.params.sampling.seed = 100 + i;
  }
  return input;
}

// Enqueues Mixed(0..n) at once into `engine`: each must complete with alone[i], its ids alone.
void ExpectAllGetTheirIdsAlone(Engine& engine, const std::vector<std::vector<int>>& alone) {
  std::vector<std::unique_ptr<Collector>> collectors;
  for (size_t i = 0; i < alone.size(); ++i) {
    collectors.push_back(std::make_unique<Collector>());
    ASSERT_OK(engine.Enqueue(Mixed(static_cast<int>(i)), collectors.back()->Sink()));
  }
  for (size_t i = 0; i < alone.size(); ++i) {
    EXPECT_OK(collectors[i]->Wait().status) << "request " << i;
    EXPECT_EQ(collectors[i]->ids(), alone[i]) << "request " << i;
  }
}

TEST_F(KvBudgetTest, AFloodOfRequestsAllCompleteWithinTheBudget) {
  constexpr int kRequests = 24;
  auto plain = MakeEngine();
  std::vector<std::vector<int>> alone;
  for (int i = 0; i < kRequests; ++i) alone.push_back(RunAlone(*plain, Mixed(i)).second);

  RecordingObserver observer;
  EngineOptions options;
  options.max_kv_tokens = 150;
  options.max_running = 8;
  options.prefill_chunk_tokens = 8;
  options.kv_block_tokens = 8;
  auto engine = MakeEngine(options, &observer);
  ExpectAllGetTheirIdsAlone(*engine, alone);
  EXPECT_GT(observer.preemptions.load(), 0);
  // The budget is the pool: 150 positions in whole blocks of 8 (152).
  EXPECT_EQ(options.KvLimit(), 152);
  EXPECT_LE(observer.max_kv, options.KvLimit());
  EngineState state = engine->state();
  EXPECT_EQ(state.running, 0);
  EXPECT_EQ(state.waiting, 0);
  // What stays: kept context prefixes only, within the budget.
  EXPECT_LE(state.kv_tokens_used, options.KvLimit());
  absl::MutexLock lock(&observer.mu_);
  EXPECT_EQ(observer.finished.size(), static_cast<size_t>(kRequests));
}

// The KV pool's block size changes where positions live, never what is computed: blocks of one
// position, of 5 (no divisor of anything else here) and of 64 (larger than most requests), with
// chunked prefill and shared prefixes, give every request the ids it gets from the default engine.
TEST_F(KvBudgetTest, BlockSizeChangesNoOutput) {
  constexpr int kRequests = 12;
  auto plain = MakeEngine();
  std::vector<std::vector<int>> alone;
  for (int i = 0; i < kRequests; ++i) alone.push_back(RunAlone(*plain, Mixed(i)).second);
  for (int block : {1, 5, 64}) {
    SCOPED_TRACE(block);
    EngineOptions options;
    options.kv_block_tokens = block;
    options.prefill_chunk_tokens = 7;
    auto engine = MakeEngine(options);
    ExpectAllGetTheirIdsAlone(*engine, alone);
    // Only kept prefixes stay, in whole blocks.
    EXPECT_EQ(engine->state().kv_tokens_used % block, 0);
  }
}

TEST_F(KvBudgetTest, BlockSizeIsValidated) {
  EngineOptions bad;
  bad.kv_block_tokens = 0;
  EXPECT_FALSE(bad.Validate(512).ok());
}

}  // namespace
}  // namespace icae::decoder
