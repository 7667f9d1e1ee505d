// The decoder engine without gRPC, on the golden tiny-llama + tiny-icae: golden ids through the
// scheduler, batch invariance, admission limits (running, KV budget, queue), cancellation and
// deadlines, drain and shutdown. Validation errors: request_validator_test.cc.
#include "decoder_service/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/model/slot_decoder.h"
#include "decoder_service/engine/generate_input.h"
#include "tests/decoder_service/decoder_test_util.h"
#include "tests/decoder_service/engine_test_util.h"
#include "tests/util/test_util.h"

namespace icae::decoder {
namespace {

using ::icae::testing::IcaeFixture;
using ::icae::testing::StatusIs;
using ::icae::testing::ToIds;
using ::testing::HasSubstr;

TEST_F(EngineTest, GoldenAeGreedyIds) {
  RecordingObserver observer;
  auto engine = MakeEngine({}, &observer);
  for (const auto& [slots, expected] :
       {std::pair<std::string, std::string>{"slots", "ae_greedy_ids"},
        {"slots40", "ae40_greedy_ids"}}) {
    auto [final, ids] = RunAlone(*engine, AeInput(IcaeFixture(slots), 12));
    EXPECT_OK(final.status);
    EXPECT_EQ(ids, ToIds(IcaeFixture(expected))) << slots;
    EXPECT_EQ(final.finish_reason, FinishReason::kLength);
    EXPECT_EQ(final.usage.generated_tokens, 12);
    EXPECT_EQ(final.usage.slot_tokens, IcaeFixture(slots).size(0));
    EXPECT_EQ(final.usage.prompt_tokens, 1);  // The AE token.
    EXPECT_EQ(final.usage.uncompressed_context_tokens, 4 * IcaeFixture(slots).size(0));
    // 2 layers x (keys + values) x kv_dim 32 x float32 per position; its own positions are the
    // AE token and the 11 ids fed back (the 12th is never fed), in whole 16-position blocks of
    // the KV pool: one. The slots' KV is the shared context prefix, kept for later requests.
    const int64_t per_position = 2 * 2 * 32 * 4;
    EXPECT_EQ(final.usage.kv_cache_bytes, per_position * 16);
    EXPECT_EQ(final.usage.cached_positions, 0);
    EXPECT_GT(final.usage.total_seconds, 0);
  }
  EXPECT_EQ(observer.tokens.load(), 24);
  EngineState state = engine->state();
  EXPECT_EQ(state.running, 0);
  // What stays in use: the two kept prefixes (the slots, each in whole 16-position blocks),
  // nothing of the finished requests.
  auto held = [](int64_t positions) { return (positions + 15) / 16 * 16; };
  EXPECT_EQ(state.kv_tokens_used,
            held(IcaeFixture("slots").size(0)) + held(IcaeFixture("slots40").size(0)));
  // Off: nothing stays.
  EngineOptions off;
  off.prefix_cache_bytes = 0;
  auto plain = MakeEngine(off);
  auto [final, ids] = RunAlone(*plain, AeInput(IcaeFixture("slots"), 12));
  EXPECT_EQ(ids, ToIds(IcaeFixture("ae_greedy_ids")));
  // One 16-position block holds 4 slots + AE + 11 fed ids.
  EXPECT_EQ(final.usage.kv_cache_bytes, 2 * 2 * 32 * 4 * 16);
  EXPECT_EQ(plain->state().kv_tokens_used, 0);
}

TEST_F(EngineTest, SlotsOfAnyFloatDtypeAreCast) {
  auto engine = MakeEngine();
  for (at::ScalarType type : {at::kHalf, at::kBFloat16, at::kDouble}) {
    auto [final, ids] = RunAlone(*engine, AeInput(IcaeFixture("slots").to(type), 12));
    EXPECT_OK(final.status);
    EXPECT_EQ(ids.size(), 12u);
  }
  // float64 carries the float32 values exactly: the golden ids.
  auto [final, ids] = RunAlone(*engine, AeInput(IcaeFixture("slots").to(at::kDouble), 12));
  EXPECT_EQ(ids, ToIds(IcaeFixture("ae_greedy_ids")));
}

TEST_F(EngineTest, OutputDoesNotDependOnTheBatch) {
  RecordingObserver observer;
  EngineOptions options;
  options.max_running = 8;
  auto engine = MakeEngine(options, &observer);
  std::vector<std::vector<int>> alone;
  for (int i = 0; i < 8; ++i) alone.push_back(RunAlone(*engine, Varied(i, 24)).second);
  // Seeded sampling too: same seed, same ids, alone or batched.
  GenerateInput sampled = Varied(3, 24);
  sampled.params.sampling.temperature = 0.9f;
  sampled.params.sampling.top_p = 0.95f;
  sampled.params.sampling.seed = 7;
  GenerateInput sampled_copy = sampled;
  std::vector<int> sampled_alone = RunAlone(*engine, std::move(sampled)).second;

  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < 9; ++i) collectors.push_back(std::make_unique<Collector>());
  for (int i = 0; i < 8; ++i) ASSERT_OK(engine->Enqueue(Varied(i, 24), collectors[i]->Sink()));
  ASSERT_OK(engine->Enqueue(std::move(sampled_copy), collectors[8]->Sink()));
  for (int i = 0; i < 8; ++i) {
    EXPECT_OK(collectors[i]->Wait().status);
    EXPECT_EQ(collectors[i]->ids(), alone[i]) << "request " << i;
  }
  collectors[8]->Wait();
  EXPECT_EQ(collectors[8]->ids(), sampled_alone);
  EXPECT_GT(observer.max_batch, 1);
  EXPECT_LE(observer.max_batch, 8);
}

// Chunked prefill gives the ids of a whole prefill, alone or while other sequences decode, its
// chunks in steps of their own or riding along the decode steps (mixed_step_rows).
TEST_F(EngineTest, ChunkedPrefillGivesTheSameIds) {
  EngineOptions whole_options;
  whole_options.prefill_chunk_tokens = 0;
  auto whole = MakeEngine(whole_options);
  std::vector<std::vector<int>> expected;
  for (int i = 4; i < 8; ++i) expected.push_back(RunAlone(*whole, Varied(i, 24)).second);
  for (int mixed_rows : {0, 4, 16}) {
    SCOPED_TRACE(mixed_rows);
    EngineOptions chunked_options;
    chunked_options.prefill_chunk_tokens = 3;
    chunked_options.mixed_step_rows = mixed_rows;
    RecordingObserver observer;
    auto chunked = MakeEngine(chunked_options, &observer);
    for (int i = 0; i < 4; ++i) {
      const std::vector<int> alone = RunAlone(*whole, Varied(i, 24)).second;
      EXPECT_EQ(RunAlone(*chunked, Varied(i, 24)).second, alone) << "request " << i;
    }
    EXPECT_EQ(observer.carried_positions.load(), 0) << "nothing ran beside them";
    // Four at once: the later ones prefill in chunks while the earlier ones decode.
    std::vector<std::unique_ptr<Collector>> collectors;
    for (int i = 0; i < 4; ++i) collectors.push_back(std::make_unique<Collector>());
    for (int i = 0; i < 4; ++i) {
      ASSERT_OK(chunked->Enqueue(Varied(4 + i, 24), collectors[i]->Sink()));
    }
    for (int i = 0; i < 4; ++i) {
      EXPECT_OK(collectors[i]->Wait().status);
      EXPECT_EQ(collectors[i]->ids(), expected[i]) << "request " << 4 + i;
    }
    if (mixed_rows == 0) {
      EXPECT_EQ(observer.carried_positions.load(), 0);
    } else {
      EXPECT_GT(observer.carried_positions.load(), 0) << "no chunk rode along a decode step";
    }
    EXPECT_GT(observer.alone_positions.load(), 0);
  }
  EngineOptions bad;
  bad.prefill_chunk_tokens = -1;
  EXPECT_THAT(bad.Validate(512), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("--prefill_chunk_tokens")));
  bad = EngineOptions();
  bad.mixed_step_rows = -1;
  EXPECT_THAT(bad.Validate(512), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("--mixed_step_rows")));
  bad = EngineOptions();
  bad.prefix_cache_bytes = -1;
  EXPECT_THAT(bad.Validate(512), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("--prefix_cache_bytes")));
}

// The reservation arithmetic below is that of requests without slot-prefix reuse (which
// prefix_reuse_test.cc covers).
TEST_F(EngineTest, RunningBatchAndKvBudgetAreRespected) {
  {
    RecordingObserver observer;
    EngineOptions options;
    options.prefix_cache_bytes = 0;
    options.max_running = 2;
    auto engine = MakeEngine(options, &observer);
    std::vector<std::unique_ptr<Collector>> collectors;
    for (int i = 0; i < 6; ++i) {
      collectors.push_back(std::make_unique<Collector>());
      ASSERT_OK(engine->Enqueue(Varied(i, 16), collectors.back()->Sink()));
    }
    for (auto& c : collectors) EXPECT_OK(c->Wait().status);
    EXPECT_EQ(observer.max_running, 2);
    EXPECT_LE(observer.max_batch, 2);
    EXPECT_EQ(engine->state().kv_tokens_used, 0);
  }
  {
    // Each request ends up holding its context (13-27 positions) and 39 fed ids: two fit in
    // 100 whole. Admission takes what they need now (one 16-position block each), so more start; as
    // they grow the budget runs out and the youngest are preempted and later resumed by
    // recompute. Every request still gets exactly the ids it gets alone, and the budget is never
    // passed.
    RecordingObserver observer;
    EngineOptions options;
    options.prefix_cache_bytes = 0;
    options.max_kv_tokens = 100;
    auto engine = MakeEngine(options, &observer);
    // The last one samples (seeded): its sampler state survives a preemption.
    auto input = [](int i) {
      GenerateInput in = Varied(i, 40);
      if (i == 4) {
        in.params.sampling.temperature = 0.9f;
        in.params.sampling.seed = 5;
      }
      return in;
    };
    std::vector<std::vector<int>> alone;
    for (int i = 0; i < 5; ++i) alone.push_back(RunAlone(*engine, input(i)).second);
    std::vector<std::unique_ptr<Collector>> collectors;
    for (int i = 0; i < 5; ++i) {
      collectors.push_back(std::make_unique<Collector>());
      ASSERT_OK(engine->Enqueue(input(i), collectors.back()->Sink()));
    }
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(collectors[i]->Wait().usage.generated_tokens, 40);
      EXPECT_EQ(collectors[i]->ids(), alone[i]) << "request " << i;
    }
    EXPECT_GT(observer.max_running, 2);
    EXPECT_GT(observer.preemptions.load(), 0);
    EXPECT_LE(observer.max_kv, options.KvLimit());  // 100 in whole blocks of 16: 112.
    EXPECT_EQ(engine->state().kv_tokens_used, 0);
  }
}

TEST_F(EngineTest, FullQueueIsResourceExhausted) {
  EngineOptions options;
  options.prefix_cache_bytes = 0;
  options.max_running = 1;
  options.max_waiting = 1;
  auto engine = MakeEngine(options);
  absl::Notification release;
  Collector first, second;
  first.HoldFirstEvent(&release);
  ASSERT_OK(engine->Enqueue(AeInput(IcaeFixture("slots"), 12), first.Sink()));
  first.WaitFirstEvent();  // Running, and the scheduler is held.
  ASSERT_OK(engine->Enqueue(AeInput(IcaeFixture("slots"), 12), second.Sink()));
  EngineState state = engine->state();
  EXPECT_EQ(state.running, 1);
  EXPECT_EQ(state.waiting, 1);
  EXPECT_EQ(state.kv_tokens_used, 16);  // One block: 4 slots + AE, room to grow.
  Collector third;
  EXPECT_THAT(engine->Enqueue(AeInput(IcaeFixture("slots"), 12), third.Sink()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_waiting 1")));
  release.Notify();
  EXPECT_EQ(first.Wait().finish_reason, FinishReason::kLength);
  EXPECT_OK(second.Wait().status);
  EXPECT_EQ(second.ids(), ToIds(IcaeFixture("ae_greedy_ids")));
  EXPECT_EQ(third.events(), 0);
}

TEST_F(EngineTest, CancelStopsWithinOneStepAndFreesTheCache) {
  RecordingObserver observer;
  EngineOptions options;
  options.prefix_cache_bytes = 0;
  auto engine = MakeEngine(options, &observer);
  absl::Notification release;
  Collector c;
  c.HoldFirstEvent(&release);
  GenerateInput input = AeInput(IcaeFixture("slots"), 400);
  input.ignore_eos = true;
  absl::StatusOr<uint64_t> id = engine->Enqueue(std::move(input), c.Sink());
  ASSERT_OK(id);
  c.WaitFirstEvent();
  EXPECT_EQ(engine->state().kv_tokens_used, 16);  // What it needs now, not its 400 tokens.
  engine->Cancel(*id, absl::CancelledError("client went away"));
  release.Notify();
  const GenerationEvent& final = c.Wait();
  EXPECT_THAT(final.status, StatusIs(absl::StatusCode::kCancelled, "client went away"));
  EXPECT_LE(final.usage.generated_tokens, 2);
  EngineState state = engine->state();
  EXPECT_EQ(state.running, 0);
  EXPECT_EQ(state.kv_tokens_used, 0);
  absl::MutexLock lock(&observer.mu_);
  EXPECT_EQ(observer.finished, std::vector<std::string>{"cancelled"});
}

TEST_F(EngineTest, CancelAndDeadlineWhileWaiting) {
  EngineOptions options;
  options.max_running = 1;
  auto engine = MakeEngine(options);
  absl::Notification release;
  Collector first, cancelled, expired;
  first.HoldFirstEvent(&release);
  ASSERT_OK(engine->Enqueue(AeInput(IcaeFixture("slots"), 12), first.Sink()));
  first.WaitFirstEvent();
  absl::StatusOr<uint64_t> id =
      engine->Enqueue(AeInput(IcaeFixture("slots"), 12), cancelled.Sink());
  ASSERT_OK(id);
  GenerateInput late = AeInput(IcaeFixture("slots"), 12);
  late.deadline = absl::Now() + absl::Milliseconds(1);
  ASSERT_OK(engine->Enqueue(std::move(late), expired.Sink()));
  engine->Cancel(*id, absl::CancelledError("gone"));
  absl::SleepFor(absl::Milliseconds(5));
  release.Notify();
  EXPECT_OK(first.Wait().status);
  EXPECT_THAT(cancelled.Wait().status, StatusIs(absl::StatusCode::kCancelled, "gone"));
  EXPECT_EQ(cancelled.ids().size(), 0u);
  EXPECT_EQ(expired.Wait().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(expired.ids().size(), 0u);
  EXPECT_EQ(engine->state().waiting, 0);
}

TEST_F(EngineTest, DrainRefusesNewWorkAndShutdownCutsTheRest) {
  auto engine = MakeEngine();
  absl::Notification release;
  Collector running;
  running.HoldFirstEvent(&release);
  GenerateInput input = AeInput(IcaeFixture("slots"), 400);
  input.ignore_eos = true;
  ASSERT_OK(engine->Enqueue(std::move(input), running.Sink()));
  running.WaitFirstEvent();
  engine->Drain();
  Collector refused;
  EXPECT_THAT(engine->Enqueue(AeInput(IcaeFixture("slots"), 12), refused.Sink()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("draining")));
  release.Notify();
  engine->Shutdown();
  const GenerationEvent& final = running.Wait();
  EXPECT_TRUE(final.status.ok() || final.status.code() == absl::StatusCode::kUnavailable)
      << final.status;
  EXPECT_EQ(engine->state().running, 0);
}

TEST_F(EngineTest, ContextLimitCutsGenerationWithLength) {
  EngineOptions options;
  options.max_context_tokens = 20;
  auto engine = MakeEngine(options);
  GenerateInput input = AeInput(IcaeFixture("slots"), 100);  // 5 positions of context.
  input.ignore_eos = true;
  auto [final, ids] = RunAlone(*engine, std::move(input));
  EXPECT_EQ(final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(ids.size(), 15u);
}

TEST_F(EngineTest, OptionsAreValidated) {
  EngineOptions options;
  options.max_running = 0;
  EXPECT_THAT(Engine::Create(model_, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_running")));
  options = EngineOptions();
  options.max_context_tokens = 100000;
  EXPECT_THAT(Engine::Create(model_, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_context_tokens")));
}

}  // namespace
}  // namespace icae::decoder
