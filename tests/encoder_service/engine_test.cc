// The engine with the real golden tiny model, without gRPC: golden slots through batching,
// batching across requests, the cache, cancellation, deadlines, the queue bound and shutdown.
#include "encoder_service/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/encoder_service/encoder_test_util.h"
#include "tests/util/test_util.h"

namespace icae::encoder {
namespace {

using ::icae::testing::FloatsFromBF16;
using ::icae::testing::FloatsFromF32;
using ::icae::testing::MaxAbsDiff;
using ::icae::testing::RandomIds;
using ::icae::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kModel = std::string(ICAE_TESTDATA) + "/tiny-llama";
const std::string kAdapter = std::string(ICAE_TESTDATA) + "/tiny-icae/adapter.safetensors";

// Counts what the engine reports (kept in memory; a real EngineMetrics implementation).
class CountingMetrics : public EngineMetrics {
 public:
  void ObserveBatch(int segments, int64_t padded_tokens, double) override {
    absl::MutexLock lock(&mu);
    batches.push_back(segments);
    padded.push_back(padded_tokens);
  }
  void AddCompleted(int64_t s, int64_t t, int64_t sl) override {
    spans += s;
    tokens += t;
    slots += sl;
  }
  void AddDropped(DropReason reason, int64_t segments) override {
    (reason == DropReason::kDeadline ? dropped_deadline : dropped_cancelled) += segments;
  }
  void AddCacheLookup(bool hit) override { (hit ? hits : misses)++; }
  int64_t Segments() {
    absl::MutexLock lock(&mu);
    int64_t total = 0;
    for (int b : batches) total += b;
    return total;
  }
  absl::Mutex mu;
  std::vector<int> batches;
  std::vector<int64_t> padded;
  std::atomic<int64_t> spans{0}, tokens{0}, slots{0}, hits{0}, misses{0};
  std::atomic<int64_t> dropped_deadline{0}, dropped_cancelled{0};
};

// A callback's outcome, waited for.
struct Outcome {
  absl::Notification done;
  absl::StatusOr<EncodeResult> result = absl::UnknownError("not called");
  EncodeCallback Callback() {
    return [this](absl::StatusOr<EncodeResult> r) {
      result = std::move(r);
      done.Notify();
    };
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(absl::Seconds(60)); }
};

SpanInput Ids(std::vector<int> ids, std::string id = "") {
  SpanInput span;
  span.id = std::move(id);
  span.kind = SpanInput::Kind::kTokenIds;
  span.token_ids = std::move(ids);
  return span;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto golden = ::icae::testing::ReadGolden();
    ASSERT_OK(golden);
    golden_ = *std::move(golden);
  }

  std::unique_ptr<Engine> MakeEngine(EngineOptions options) {
    auto model = LoadEncoderModel(kModel, kAdapter, RuntimeOptions{"cpu", "float32", 1});
    EXPECT_OK(model);
    if (!model.ok()) return nullptr;
    auto engine = Engine::Create(options, *std::move(model), &metrics_, 1);
    EXPECT_OK(engine);
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  ::icae::testing::GoldenSlots golden_;
  CountingMetrics metrics_;
};

TEST_F(EngineTest, GoldenSlotsForSingleAndMultiSegmentSpans) {
  auto engine = MakeEngine(EngineOptions());
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->model_info().mem_size, 4);
  EXPECT_EQ(engine->model_info().hidden_size, 64);
  EncodeRequest request;
  request.spans = {Ids(golden_.context_ids, "one"), Ids(golden_.context40_ids, "three")};
  Outcome outcome;
  ASSERT_OK(engine->Enqueue(std::move(request), outcome.Callback()));
  ASSERT_TRUE(outcome.Wait());
  ASSERT_OK(outcome.result);
  ASSERT_EQ(outcome.result->spans.size(), 2u);
  const SpanResult& one = outcome.result->spans[0];
  const SpanResult& three = outcome.result->spans[1];
  EXPECT_EQ(one.id, "one");
  EXPECT_EQ(one.segments, 1);
  EXPECT_EQ(one.tokens, 16);
  EXPECT_EQ(one.slots.num_slots, 4);
  EXPECT_EQ(one.slots.data->size(), 4u * 64 * 4);  // [4 slots, hidden 64] float32
  EXPECT_EQ(one.slots.dtype, DType::kFloat32);
  EXPECT_LE(MaxAbsDiff(FloatsFromF32(*one.slots.data), golden_.slots), 1e-4);
  EXPECT_EQ(three.segments, 3);
  EXPECT_EQ(three.slots.num_slots, 12);
  EXPECT_LE(MaxAbsDiff(FloatsFromF32(*three.slots.data), golden_.slots40), 1e-4);
  // All four segments ran in one batch; padded to the longest (16 tokens) plus 4 memory slots.
  EXPECT_EQ(metrics_.batches, std::vector<int>{4});
  EXPECT_EQ(metrics_.padded, std::vector<int64_t>{4 * (16 + 4)});
  EXPECT_EQ(metrics_.spans, 2);
  EXPECT_EQ(metrics_.tokens, 56);
  EXPECT_EQ(metrics_.slots, 16);
}

TEST_F(EngineTest, BatchesSegmentsAcrossRequestsAndKeepsEachResult) {
  EngineOptions options;
  options.batch_timeout_us = 200000;  // long enough for all requests to be queued together
  options.max_batch_segments = 64;
  auto engine = MakeEngine(options);
  ASSERT_NE(engine, nullptr);
  constexpr int kRequests = 6;
  std::vector<std::unique_ptr<Outcome>> outcomes;
  for (int r = 0; r < kRequests; ++r) {
    outcomes.push_back(std::make_unique<Outcome>());
    EncodeRequest request;
    request.bypass_cache = true;
    request.spans = {
        Ids(r % 2 == 0 ? golden_.context_ids : golden_.context40_ids, "r" + std::to_string(r))};
    ASSERT_OK(engine->Enqueue(std::move(request), outcomes.back()->Callback()));
  }
  for (int r = 0; r < kRequests; ++r) {
    ASSERT_TRUE(outcomes[r]->Wait());
    ASSERT_OK(outcomes[r]->result);
    const SpanResult& span = outcomes[r]->result->spans[0];
    EXPECT_EQ(span.id, "r" + std::to_string(r));
    EXPECT_LE(
        MaxAbsDiff(FloatsFromF32(*span.slots.data), r % 2 == 0 ? golden_.slots : golden_.slots40),
        1e-4);
  }
  // 3 x 1 + 3 x 3 segments, fewer batches than requests.
  EXPECT_EQ(metrics_.Segments(), 12);
  EXPECT_LT(metrics_.batches.size(), static_cast<size_t>(kRequests));
}

TEST_F(EngineTest, SeveralExecutorsAndEnqueuingThreadsKeepEveryResult) {
  EngineOptions options;
  options.executor_threads = 3;
  options.max_batch_segments = 2;  // many small batches, spread over the executors
  auto engine = MakeEngine(options);
  ASSERT_NE(engine, nullptr);
  constexpr int kThreads = 4, kPerThread = 8;
  std::vector<std::unique_ptr<Outcome>> outcomes(kThreads * kPerThread);
  for (auto& o : outcomes) o = std::make_unique<Outcome>();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        EncodeRequest request;
        request.bypass_cache = n % 3 == 0;
        request.spans = {
            Ids(n % 2 == 0 ? golden_.context_ids : golden_.context40_ids, std::to_string(n)),
            Ids(golden_.context40_ids, "second")};
        EXPECT_OK(engine->Enqueue(std::move(request), outcomes[n]->Callback()));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    ASSERT_TRUE(outcomes[n]->Wait());
    ASSERT_OK(outcomes[n]->result);
    const EncodeResult& result = *outcomes[n]->result;
    ASSERT_EQ(result.spans.size(), 2u);
    EXPECT_EQ(result.spans[0].id, std::to_string(n));
    EXPECT_EQ(result.spans[1].id, "second");
    EXPECT_LE(MaxAbsDiff(FloatsFromF32(*result.spans[0].slots.data),
                         n % 2 == 0 ? golden_.slots : golden_.slots40),
              1e-4)
        << n;
    EXPECT_LE(MaxAbsDiff(FloatsFromF32(*result.spans[1].slots.data), golden_.slots40), 1e-4);
  }
  EXPECT_EQ(engine->pending_requests(), 0);
  EXPECT_EQ(engine->queued_segments(), 0);
}

TEST_F(EngineTest, CacheHitSkipsTheModelAndReturnsTheSameBytes) {
  auto engine = MakeEngine(EngineOptions());
  ASSERT_NE(engine, nullptr);
  auto run = [&](bool bypass, DType dtype) {
    EncodeRequest request;
    request.bypass_cache = bypass;
    request.slot_dtype = dtype;
    request.spans = {Ids(golden_.context40_ids, "x")};
    Outcome outcome;
    EXPECT_OK(engine->Enqueue(std::move(request), outcome.Callback()));
    EXPECT_TRUE(outcome.Wait());
    return outcome.result;
  };
  auto first = run(false, DType::kFloat32);
  ASSERT_OK(first);
  const int64_t segments_after_first = metrics_.Segments();
  auto second = run(false, DType::kFloat32);
  ASSERT_OK(second);
  EXPECT_FALSE(first->spans[0].cache_hit);
  EXPECT_TRUE(second->spans[0].cache_hit);
  EXPECT_EQ(*first->spans[0].slots.data, *second->spans[0].slots.data);
  EXPECT_EQ(metrics_.Segments(), segments_after_first);  // no model run for the hit
  EXPECT_EQ(metrics_.hits, 1);
  EXPECT_EQ(metrics_.misses, 1);
  EXPECT_EQ(metrics_.spans, 2);  // hits count as compressed spans

  // Another dtype is another entry; bypass neither reads nor counts.
  auto bf16 = run(false, DType::kBFloat16);
  ASSERT_OK(bf16);
  EXPECT_FALSE(bf16->spans[0].cache_hit);
  EXPECT_EQ(bf16->spans[0].slots.data->size(), 12u * 64 * 2);
  EXPECT_LE(MaxAbsDiff(FloatsFromBF16(*bf16->spans[0].slots.data), golden_.slots40), 2e-2);
  auto bypass = run(true, DType::kFloat32);
  ASSERT_OK(bypass);
  EXPECT_FALSE(bypass->spans[0].cache_hit);
  EXPECT_EQ(metrics_.hits, 1);
  EXPECT_EQ(metrics_.misses, 2);
}

TEST_F(EngineTest, CancelDropsQueuedWorkAndDeadlineIsCheckedAtBatchFormation) {
  EngineOptions options;
  options.max_batch_segments = 1;  // one segment per batch: the queue drains slowly
  options.max_queue_segments = 100000;
  options.max_input_tokens = 100000;
  auto engine = MakeEngine(options);
  ASSERT_NE(engine, nullptr);
  EncodeRequest big;
  big.bypass_cache = true;
  big.spans = {Ids(RandomIds(16 * 2000, 384, 1))};  // 2000 segments
  Outcome big_outcome;
  absl::StatusOr<RequestId> big_id = engine->Enqueue(std::move(big), big_outcome.Callback());
  ASSERT_OK(big_id);

  // Already past its deadline: dropped before compute, at the next batch formation.
  EncodeRequest late;
  late.deadline = absl::Now() - absl::Milliseconds(1);
  late.spans = {Ids(golden_.context40_ids)};
  Outcome late_outcome;
  ASSERT_OK(engine->Enqueue(std::move(late), late_outcome.Callback()));
  ASSERT_TRUE(late_outcome.Wait());
  EXPECT_THAT(late_outcome.result, StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("")));
  EXPECT_EQ(metrics_.dropped_deadline, 3);

  engine->Cancel(*big_id, absl::CancelledError("client went away"));
  ASSERT_TRUE(big_outcome.Wait());
  EXPECT_THAT(big_outcome.result, StatusIs(absl::StatusCode::kCancelled, HasSubstr("went away")));
  EXPECT_GT(metrics_.dropped_cancelled, 1000);  // most of the 2000 segments never ran
  // Every segment either ran or was dropped (the batch running at the cancel may still end).
  EXPECT_GE(metrics_.dropped_cancelled + metrics_.Segments(), 1999);
  EXPECT_LE(metrics_.dropped_cancelled + metrics_.Segments(), 2000);
  EXPECT_EQ(engine->queued_segments(), 0);
  EXPECT_EQ(engine->pending_requests(), 0);
  engine->Cancel(*big_id, absl::CancelledError("again"));  // no effect once ended
}

TEST_F(EngineTest, FullQueueIsResourceExhaustedAndOversizedRequestInvalid) {
  EngineOptions options;
  options.max_batch_segments = 1;
  options.max_queue_segments = 3000;
  options.max_input_tokens = 100000;
  auto engine = MakeEngine(options);
  ASSERT_NE(engine, nullptr);
  EncodeRequest big;
  big.bypass_cache = true;
  big.spans = {Ids(RandomIds(16 * 2500, 384, 2))};
  Outcome big_outcome;
  absl::StatusOr<RequestId> big_id = engine->Enqueue(std::move(big), big_outcome.Callback());
  ASSERT_OK(big_id);
  EncodeRequest more;
  more.spans = {Ids(RandomIds(16 * 1000, 384, 3))};
  EXPECT_THAT(engine->Enqueue(std::move(more), [](auto) { FAIL() << "must not be called"; }),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_queue_segments")));
  EncodeRequest huge;
  huge.spans = {Ids(RandomIds(16 * 3001, 384, 4))};
  EXPECT_THAT(engine->Enqueue(std::move(huge), [](auto) { FAIL() << "must not be called"; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_queue_segments 3000")));
  engine->Shutdown();
  ASSERT_TRUE(big_outcome.Wait());
  EXPECT_THAT(big_outcome.result, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting")));
  EncodeRequest after;
  after.spans = {Ids({1, 2})};
  EXPECT_THAT(engine->Enqueue(std::move(after), [](auto) {}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("")));
}

TEST_F(EngineTest, OptionsAreValidatedAgainstTheModel) {
  EngineOptions options;
  options.max_batch_tokens = 19;  // a full tiny segment needs 16 + 4
  auto model = LoadEncoderModel(kModel, kAdapter, RuntimeOptions());
  ASSERT_OK(model);
  EXPECT_THAT(Engine::Create(options, *std::move(model), nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_batch_tokens")));
  options = EngineOptions();
  options.max_spans = 0;
  EXPECT_THAT(options.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_spans")));
}

}  // namespace
}  // namespace icae::encoder
