// Slot-prefix reuse in the decoder engine (no gRPC), on the golden tiny-llama + tiny-icae: a
// second question over the same context prefills only itself and gives exactly the ids of a
// fresh prefill; concurrent requests build a prefix once; eviction under the cache's byte limit
// and under KV-pool pressure; a cancelled sharer frees nothing the others read; opting out.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "decoder_service/engine/engine.h"
#include "decoder_service/engine/generate_input.h"
#include "tests/decoder_service/engine_test_util.h"

namespace icae::decoder {
namespace {

using ::icae::testing::StatusIs;

using PrefixReuseTest = EngineTest;

// Two documents (slots of both golden spans) and a text part, then a question: icae-v1 lays
// out "[doc1][text][doc2][FT] question [FT]", so the shared prefix is doc1 + 3 + doc2 + 1
// positions (kPrefix).
GenerateInput Question(std::vector<int> question, int max_new_tokens, at::Tensor doc2 = {}) {
  GenerateInput input;
  input.context.push_back(EngineTest::Slots(IcaeFixture("slots")));
  ContextInput text;
  text.kind = ContextInput::Kind::kTokenIds;
  text.token_ids = {17, 29, 41};
  input.context.push_back(std::move(text));
  input.context.push_back(EngineTest::Slots(doc2.defined() ? doc2 : IcaeFixture("slots40")));
  input.template_name = "icae-v1";
  input.prompt_ids = std::move(question);
  input.params.max_new_tokens = max_new_tokens;
  input.ignore_eos = true;
  return input;
}
const int kSlots = static_cast<int>(IcaeFixture("slots").size(0));
const int kSlots40 = static_cast<int>(IcaeFixture("slots40").size(0));
const int kPrefix = kSlots + 3 + kSlots40 + 1;
// What a kept prefix holds of the KV pool: whole blocks of 16 positions (the default).
const int kPrefixHeld = (kPrefix + 15) / 16 * 16;

GenerateInput Sampled(GenerateInput input) {
  input.params.sampling.temperature = 0.8f;
  input.params.sampling.top_p = 0.9f;
  input.params.sampling.seed = 11;
  return input;
}

EngineOptions NoReuse() {
  EngineOptions options;
  options.prefix_cache_bytes = 0;
  return options;
}

TEST_F(PrefixReuseTest, SecondQuestionReusesThePrefixWithTheIdsOfAFreshPrefill) {
  RecordingObserver observer;
  auto engine = MakeEngine({}, &observer);
  auto [first, first_ids] = RunAlone(*engine, Question({5, 9, 12}, 16));
  EXPECT_OK(first.status);
  EXPECT_EQ(first.usage.cached_positions, 0);
  auto [second, second_ids] = RunAlone(*engine, Question({7, 30}, 16));
  EXPECT_OK(second.status);
  EXPECT_EQ(second.usage.cached_positions, kPrefix);
  EXPECT_EQ(second.usage.slot_tokens, kSlots + kSlots40);  // Usage counts what it reads.
  auto [third, sampled_ids] = RunAlone(*engine, Sampled(Question({7, 30}, 16)));
  EXPECT_EQ(third.usage.cached_positions, kPrefix);
  {
    absl::MutexLock lock(&observer.mu_);
    EXPECT_EQ(observer.prefix_misses, 1);
    EXPECT_EQ(observer.prefix_hits, 2);
    EXPECT_EQ(observer.reused_positions, 2 * kPrefix);
    EXPECT_EQ(observer.prefix_entries, 1);
    // KV (2 layers x K,V x kv_dim 32, float32) per position of its blocks, and the key: the
    // slots as sent (hidden 64, float32) and 6 ids (2 slot markers, 3 text ids, [FT]).
    EXPECT_EQ(observer.prefix_bytes,
              kPrefixHeld * 2 * 2 * 32 * 4 + (kSlots + kSlots40) * 64 * 4 + 6 * 4);
  }
  // A fresh engine prefills the same questions' prefixes anew (misses): the same ids, greedy and
  // sampled, bit for bit.
  auto fresh = MakeEngine();
  EXPECT_EQ(RunAlone(*fresh, Question({7, 30}, 16)).second, second_ids);
  auto fresh_sampled = MakeEngine();
  EXPECT_EQ(RunAlone(*fresh_sampled, Sampled(Question({7, 30}, 16))).second, sampled_ids);
  // Without reuse (one cache per request, one prefill): the same greedy ids.
  auto plain = MakeEngine(NoReuse());
  auto [plain_final, plain_ids] = RunAlone(*plain, Question({7, 30}, 16));
  EXPECT_EQ(plain_ids, second_ids);
  EXPECT_EQ(plain_final.usage.cached_positions, 0);
  EXPECT_EQ(RunAlone(*plain, Question({5, 9, 12}, 16)).second, first_ids);
  // The reuser's own KV is its question and answer only.
  EXPECT_LT(second.usage.kv_cache_bytes, plain_final.usage.kv_cache_bytes);
}

TEST_F(PrefixReuseTest, EveryTemplateSharesItsContextPrefix) {
  auto engine = MakeEngine();
  // ae: "[slots][AE]": the prefix is the slots (the last position is always prefilled).
  RunAlone(*engine, AeInput(IcaeFixture("slots40"), 4));
  auto [ae, ae_ids] = RunAlone(*engine, AeInput(IcaeFixture("slots40"), 12));
  EXPECT_EQ(ae.usage.cached_positions, kSlots40);
  EXPECT_EQ(ae_ids, testing::ToIds(IcaeFixture("ae40_greedy_ids")));
  // raw: "[context] prompt".
  GenerateInput raw = Question({5}, 4);
  raw.template_name = "raw";
  RunAlone(*engine, raw);
  raw.prompt_ids = {8, 8};
  EXPECT_EQ(RunAlone(*engine, raw).first.usage.cached_positions, kSlots + 3 + kSlots40);
  // Another context (a different last document) shares nothing.
  EXPECT_EQ(RunAlone(*engine, Question({5}, 4, IcaeFixture("slots40") * 0.5)).first.usage
                .cached_positions,
            0);
}

TEST_F(PrefixReuseTest, ConcurrentQuestionsBuildThePrefixOnce) {
  RecordingObserver observer;
  EngineOptions options;
  options.prefill_chunk_tokens = 5;  // The builder takes several steps; the others wait for it.
  auto engine = MakeEngine(options, &observer);
  auto plain = MakeEngine(NoReuse());
  std::vector<std::vector<int>> expected;
  for (int i = 0; i < 4; ++i) expected.push_back(RunAlone(*plain, Question({5 + i, 3}, 12)).second);
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < 4; ++i) {
    collectors.push_back(std::make_unique<Collector>());
    ASSERT_OK(engine->Enqueue(Question({5 + i, 3}, 12), collectors.back()->Sink()));
  }
  int reused = 0;
  for (int i = 0; i < 4; ++i) {
    const GenerationEvent& final = collectors[i]->Wait();
    EXPECT_OK(final.status);
    reused += final.usage.cached_positions;
    EXPECT_EQ(collectors[i]->ids(), expected[i]) << "request " << i;
  }
  EXPECT_EQ(reused, 3 * kPrefix);
  absl::MutexLock lock(&observer.mu_);
  EXPECT_EQ(observer.prefix_misses, 1);
  EXPECT_EQ(observer.prefix_hits, 3);
}

TEST_F(PrefixReuseTest, EvictionUnderTheByteLimitAndUnderKvPressure) {
  {
    // Room for one prefix: a second context evicts the first.
    RecordingObserver observer;
    EngineOptions options;
    options.prefix_cache_bytes = kPrefixHeld * 2 * 2 * 32 * 4 + kPrefix * 64 * 4 + 100;
    auto engine = MakeEngine(options, &observer);
    RunAlone(*engine, Question({5}, 4));
    RunAlone(*engine, Question({5}, 4, IcaeFixture("slots40") * 0.5));
    EXPECT_EQ(RunAlone(*engine, Question({5}, 4)).first.usage.cached_positions, 0);
    absl::MutexLock lock(&observer.mu_);
    EXPECT_EQ(observer.prefix_evictions, 2);
    EXPECT_EQ(observer.prefix_entries, 1);
    EXPECT_LE(observer.prefix_bytes, options.prefix_cache_bytes);
  }
  {
    // A request over a new context reserves all its positions in blocks: its prefix's (kPrefix)
    // and, after it, the question, [FT] and 4 new ids; a pool of 48 cannot also hold the kept
    // prefix, so admission drops the idle prefix instead of leaving the request waiting forever.
    const int need = kPrefixHeld + 16;
    ASSERT_LE(2 + 4, 16);
    ASSERT_LE(need, 48);
    ASSERT_GT(kPrefixHeld + need, 48);
    RecordingObserver observer;
    EngineOptions options;
    options.max_kv_tokens = 48;
    auto engine = MakeEngine(options, &observer);
    RunAlone(*engine, Question({5}, 4));
    EXPECT_EQ(engine->state().kv_tokens_used, kPrefixHeld);
    auto [final, ids] = RunAlone(*engine, Question({5}, 4, IcaeFixture("slots40") * 0.5));
    EXPECT_OK(final.status);
    EXPECT_EQ(ids.size(), 4u);
    absl::MutexLock lock(&observer.mu_);
    EXPECT_EQ(observer.prefix_evictions, 1);
    EXPECT_LE(observer.max_kv, 48);
  }
}

TEST_F(PrefixReuseTest, CancellingASharerFreesNothingTheOthersRead) {
  auto engine = MakeEngine();
  auto plain = MakeEngine(NoReuse());
  const std::vector<int> expected = RunAlone(*plain, Question({9, 9}, 60)).second;
  RunAlone(*engine, Question({1}, 2));  // Keeps the prefix.
  absl::Notification release;
  Collector cancelled, kept;
  cancelled.HoldFirstEvent(&release);
  absl::StatusOr<uint64_t> id = engine->Enqueue(Question({4}, 200), cancelled.Sink());
  ASSERT_OK(id);
  ASSERT_OK(engine->Enqueue(Question({9, 9}, 60), kept.Sink()));
  cancelled.WaitFirstEvent();
  engine->Cancel(*id, absl::CancelledError("gone"));
  release.Notify();
  EXPECT_THAT(cancelled.Wait().status, StatusIs(absl::StatusCode::kCancelled, "gone"));
  const GenerationEvent& final = kept.Wait();
  EXPECT_OK(final.status);
  EXPECT_EQ(final.usage.cached_positions, kPrefix);
  EXPECT_EQ(kept.ids(), expected);
  // The prefix is still kept for the next question.
  EXPECT_EQ(RunAlone(*engine, Question({9, 9}, 60)).first.usage.cached_positions, kPrefix);
  // A builder cut while another request waits for its prefix: the waiter builds it itself.
  auto fresh = MakeEngine([] {
    EngineOptions o;
    o.prefill_chunk_tokens = 2;
    return o;
  }());
  Collector builder, waiter;
  id = fresh->Enqueue(Question({4}, 50), builder.Sink());
  ASSERT_OK(id);
  ASSERT_OK(fresh->Enqueue(Question({9, 9}, 60), waiter.Sink()));
  fresh->Cancel(*id, absl::CancelledError("gone"));
  builder.Wait();
  EXPECT_OK(waiter.Wait().status);
  EXPECT_EQ(waiter.ids(), expected);
  EXPECT_EQ(fresh->state().kv_tokens_used, kPrefixHeld);  // Kept for later; nothing else held.
}

TEST_F(PrefixReuseTest, ARequestMayOptOut) {
  RecordingObserver observer;
  auto engine = MakeEngine({}, &observer);
  GenerateInput input = Question({5}, 4);
  input.skip_prefix_cache = true;
  RunAlone(*engine, input);
  input = Question({5}, 4);
  input.skip_prefix_cache = true;
  EXPECT_EQ(RunAlone(*engine, std::move(input)).first.usage.cached_positions, 0);
  absl::MutexLock lock(&observer.mu_);
  EXPECT_EQ(observer.prefix_hits + observer.prefix_misses, 0);
  EXPECT_EQ(observer.prefix_entries, 0);
}

}  // namespace
}  // namespace icae::decoder
