// The decoder engine without gRPC, on the golden tiny-llama + tiny-icae: golden ids through the
// scheduler, batch invariance, admission limits (running, KV budget, queue), cancellation and
// deadlines, drain and shutdown, and every validation error.
#include "decoder_service/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
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
using ::testing::AllOf;
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
    // AE token and the 11 ids fed back (the 12th is never fed), grown by blocks up to at most
    // its reservation (+1): the slots' KV is the shared context prefix, kept for later requests.
    const int64_t per_position = 2 * 2 * 32 * 4;
    EXPECT_GE(final.usage.kv_cache_bytes, per_position * (1 + 11));
    EXPECT_LE(final.usage.kv_cache_bytes, per_position * (1 + 12));
    EXPECT_EQ(final.usage.cached_positions, 0);
    EXPECT_GT(final.usage.total_seconds, 0);
  }
  EXPECT_EQ(observer.tokens.load(), 24);
  EngineState state = engine->state();
  EXPECT_EQ(state.running, 0);
  // What stays in use: the two kept prefixes (the slots), nothing of the finished requests.
  EXPECT_EQ(state.kv_tokens_used, IcaeFixture("slots").size(0) + IcaeFixture("slots40").size(0));
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

// Chunked prefill gives the ids of a whole prefill, alone or while other sequences decode, and a
// request cancelled between its chunks ends CANCELLED.
TEST_F(EngineTest, ChunkedPrefillGivesTheSameIds) {
  EngineOptions whole_options;
  whole_options.prefill_chunk_tokens = 0;
  auto whole = MakeEngine(whole_options);
  EngineOptions chunked_options;
  chunked_options.prefill_chunk_tokens = 3;
  RecordingObserver observer;
  auto chunked = MakeEngine(chunked_options, &observer);
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < 4; ++i) {
    const std::vector<int> expected = RunAlone(*whole, Varied(i, 24)).second;
    EXPECT_EQ(RunAlone(*chunked, Varied(i, 24)).second, expected) << "request " << i;
  }
  // Four at once: the later ones prefill in chunks while the earlier ones decode.
  std::vector<std::vector<int>> expected;
  for (int i = 4; i < 8; ++i) expected.push_back(RunAlone(*whole, Varied(i, 24)).second);
  for (int i = 0; i < 4; ++i) collectors.push_back(std::make_unique<Collector>());
  for (int i = 0; i < 4; ++i) ASSERT_OK(chunked->Enqueue(Varied(4 + i, 24), collectors[i]->Sink()));
  for (int i = 0; i < 4; ++i) {
    EXPECT_OK(collectors[i]->Wait().status);
    EXPECT_EQ(collectors[i]->ids(), expected[i]) << "request " << 4 + i;
  }
  EngineOptions bad;
  bad.prefill_chunk_tokens = -1;
  EXPECT_THAT(bad.Validate(512), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("--prefill_chunk_tokens")));
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
    EXPECT_LE(observer.max_kv, 100);
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

// The metadata beside a slots tensor may be left out, but never contradicts the tensor or the
// adapter, and what callers claim in source_tokens never wraps the usage counts.
TEST_F(EngineTest, SlotMetadataIsCheckedAndUsageNeverWraps) {
  auto engine = MakeEngine();
  const at::Tensor slots = IcaeFixture("slots");
  const int rows = static_cast<int>(slots.size(0)), mem = model_->mem_size();
  auto refused = [&](auto edit) {
    GenerateInput input = AeInput(slots, 4);
    edit(input.context[0]);
    return engine->Enqueue(std::move(input), [](GenerationEvent) {}).status();
  };
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(refused([](ContextInput& p) { p.source_tokens = -5; }),
              StatusIs(kInvalid, HasSubstr("context[0].source_tokens: -5 is negative")));
  EXPECT_THAT(refused([&](ContextInput& p) { p.mem_size = mem + 1; }),
              StatusIs(kInvalid, HasSubstr("context[0].mem_size")));
  EXPECT_THAT(refused([&](ContextInput& p) { p.num_segments = rows / mem + 1; }),
              StatusIs(kInvalid, HasSubstr("context[0].num_segments")));
  EXPECT_THAT(refused([](ContextInput& p) { p.num_segments = -1; }),
              StatusIs(kInvalid, HasSubstr("context[0].num_segments")));
  // Consistent metadata is accepted; two parts each claiming INT32_MAX tokens saturate.
  GenerateInput input = AeInput(slots, 2);
  input.context[0].mem_size = mem;
  input.context[0].num_segments = rows / mem;
  input.context[0].source_tokens = std::numeric_limits<int32_t>::max();
  input.context.push_back(Slots(slots));
  input.context[1].source_tokens = std::numeric_limits<int32_t>::max();
  auto [final, ids] = RunAlone(*engine, std::move(input));
  EXPECT_OK(final.status);
  EXPECT_EQ(final.usage.uncompressed_context_tokens, std::numeric_limits<int32_t>::max());
}

// Lengths are checked before the work that grows with them: prompt_ids before they are
// embedded, text before it is tokenized (its bytes against room x the longest piece).
TEST_F(EngineTest, OverlongPromptsAndTextsAreRefusedBeforeTokenizingOrEmbedding) {
  EngineOptions options;
  options.max_context_tokens = 32;
  {
    auto engine = MakeEngine(options);
    GenerateInput input = AeInput(IcaeFixture("slots"), 8);
    input.template_name = "icae-v2-instruct";
    input.prompt_ids.assign(1000000, 7);
    EXPECT_THAT(
        engine->Enqueue(std::move(input), [](GenerationEvent) {}),
        StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("prompt_ids: 1000000 ids"),
                                                           HasSubstr("--max_context_tokens 32"))));
  }
  ::icae::testing::ScratchDir dir;
  ASSERT_OK(::icae::testing::MakeTokenizedTinyLlama(dir.path()));
  auto model = SlotDecoder::Load(dir.path(), testing::TinyAdapter(), Runtime());
  ASSERT_OK(model);
  const Tokenizer* tokenizer = (*model)->tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  options.threads = 1;
  auto engine = Engine::Create(model->get(), options, nullptr);
  ASSERT_OK(engine);
  const std::string huge(32 * tokenizer->max_piece_bytes() + 1, 'a');
  {
    GenerateInput input;
    input.template_name = "raw";
    ContextInput text;
    text.kind = ContextInput::Kind::kText;
    text.text = huge;
    input.context.push_back(std::move(text));
    EXPECT_THAT((*engine)->Enqueue(std::move(input), [](GenerationEvent) {}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("context[0].text"), HasSubstr("bytes cannot fit"))));
  }
  {
    GenerateInput input;
    input.template_name = "raw";
    input.prompt = huge;
    EXPECT_THAT((*engine)->Enqueue(std::move(input), [](GenerationEvent) {}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("prompt: "), HasSubstr("bytes cannot fit"))));
  }
}

TEST_F(EngineTest, ValidationErrors) {
  EngineOptions options;
  options.max_context_tokens = 32;
  options.max_new_tokens = 64;
  options.max_kv_tokens = 60;
  auto engine = MakeEngine(options);
  const at::Tensor slots = IcaeFixture("slots");
  auto enqueue = [&](GenerateInput input) {
    Collector c;
    absl::StatusOr<uint64_t> id = engine->Enqueue(std::move(input), c.Sink());
    if (id.ok()) c.Wait();
    return id.status();
  };
  auto with_slots = [&](const at::Tensor& t) {
    GenerateInput input = AeInput(slots, 8);
    input.context[0].slots = t;
    return input;
  };
  {
    // A client string echoed in an error is clipped: an 8,000-byte encoder_id must not push the
    // message past gRPC's metadata limit (the client would see RESOURCE_EXHAUSTED instead).
    GenerateInput input = AeInput(slots, 8);
    input.context[0].encoder_id = std::string(8000, 'e');
    absl::Status status = enqueue(std::move(input));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("... (8000 bytes)")));
    EXPECT_LT(status.message().size(), 400u) << status.message().size();
    GenerateInput bad_template = AeInput(slots, 8);
    bad_template.template_name = std::string(100000, 't');
    status = enqueue(std::move(bad_template));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown template")));
    EXPECT_LT(status.message().size(), 400u) << status.message().size();
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.context[0].encoder_id = "0123abcd";
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("0123abcd"), HasSubstr(model_->accepted_encoder_id()))));
  }
  EXPECT_THAT(enqueue(with_slots(slots.narrow(1, 0, 63))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[n > 0, 64]")));
  EXPECT_THAT(enqueue(with_slots(slots.reshape({-1}))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context[0].slots")));
  EXPECT_THAT(enqueue(with_slots(slots.narrow(0, 0, 0))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("n > 0")));
  EXPECT_THAT(enqueue(with_slots(slots.to(at::kInt))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("float")));
  for (double bad : {std::nan(""), double{INFINITY}, -double{INFINITY}}) {
    at::Tensor t = slots.clone();
    t[2][7] = bad;
    EXPECT_THAT(enqueue(with_slots(t)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN or Inf")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.context.push_back(Ids(std::vector<int>(30, 7)));  // 4 + 30 + AE > 32
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_context_tokens")));
  }
  EXPECT_THAT(enqueue(AeInput(slots, 65)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_new_tokens 64")));
  {
    GenerateInput input = AeInput(slots, 8);
    input.context.push_back(Ids({3, 999}));
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("999")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.template_name = "chatml";
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("chatml")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.params.stop = {"x"};
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("tokenizer")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.context.push_back(ContextInput());  // Text, but tiny-llama has no tokenizer.
    input.context.back().text = "hello";
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("context[1].text")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.params.sampling.temperature = -1;
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  }
  // A budget smaller than one request's reservation could never admit it.
  {
    EngineOptions small;
    small.max_kv_tokens = 10;
    auto tight = MakeEngine(small);
    Collector c;
    EXPECT_THAT(tight->Enqueue(AeInput(slots, 8), c.Sink()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_kv_tokens is 10")));
  }
  EXPECT_EQ(engine->state().waiting, 0);
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
