// Shared by the decoder engine's tests (no gRPC): a sink that collects a request's events, an
// observer that records what the engine reports, and a fixture over the golden tiny-llama +
// tiny-icae with request builders.
#ifndef ICAE_TESTS_DECODER_SERVICE_ENGINE_TEST_UTIL_H_
#define ICAE_TESTS_DECODER_SERVICE_ENGINE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/model/slot_decoder.h"
#include "decoder_service/engine/engine.h"
#include "decoder_service/engine/generate_input.h"
#include "tests/decoder_service/decoder_test_util.h"
#include "tests/util/test_util.h"

namespace icae::decoder {

using ::icae::testing::IcaeFixture;

// Collects one request's events; Wait() returns the merged result.
class Collector {
 public:
  GenerationSink Sink() {
    return [this](GenerationEvent event) {
      if (hold_first_ != nullptr && !held_) {
        held_ = true;
        first_seen_.Notify();
        hold_first_->WaitForNotification();  // Deliberately stalls the scheduler (tests only).
      }
      absl::MutexLock lock(&mu_);
      ++events_;
      ids_.insert(ids_.end(), event.token_ids.begin(), event.token_ids.end());
      text_ += event.text;
      if (event.final) {
        final_ = std::move(event);
        done_.Notify();
      }
    };
  }
  // The scheduler blocks inside this request's first event until `release` is notified.
  void HoldFirstEvent(absl::Notification* release) { hold_first_ = release; }
  void WaitFirstEvent() { first_seen_.WaitForNotification(); }

  const GenerationEvent& Wait() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return final_;
  }
  std::vector<int> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  int events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Notification* hold_first_ = nullptr;
  bool held_ = false;
  absl::Notification first_seen_;
  absl::Mutex mu_;
  std::vector<int> ids_;
  std::string text_;
  int events_ = 0;
  GenerationEvent final_;
  absl::Notification done_;
};

class RecordingObserver : public EngineObserver {
 public:
  void OnDecodeStep(int batch) override {
    absl::MutexLock lock(&mu_);
    max_batch = std::max(max_batch, batch);
  }
  void OnState(int running, int waiting, int64_t kv) override {
    absl::MutexLock lock(&mu_);
    max_running = std::max(max_running, running);
    max_kv = std::max(max_kv, kv);
  }
  void OnTokens(int count) override { tokens += count; }
  void OnFinished(absl::string_view reason, double) override {
    absl::MutexLock lock(&mu_);
    finished.push_back(std::string(reason));
  }
  void OnPreempted() override { ++preemptions; }
  void OnPrefill(int64_t positions, bool carried) override {
    (carried ? carried_positions : alone_positions) += positions;
  }
  void OnPrefixLookup(bool hit, int64_t reused) override {
    absl::MutexLock lock(&mu_);
    (hit ? prefix_hits : prefix_misses) += 1;
    reused_positions += reused;
  }
  void OnPrefixCache(int64_t bytes, int entries, int64_t evicted) override {
    absl::MutexLock lock(&mu_);
    prefix_bytes = bytes;
    prefix_entries = entries;
    prefix_evictions += evicted;
  }
  absl::Mutex mu_;
  int max_batch = 0;
  int max_running = 0;
  int64_t max_kv = 0;
  std::atomic<int64_t> alone_positions{0};
  std::atomic<int64_t> carried_positions{0};
  std::atomic<int> tokens{0};
  std::atomic<int> preemptions{0};
  std::vector<std::string> finished;
  int prefix_hits = 0, prefix_misses = 0;
  int64_t reused_positions = 0;
  int64_t prefix_bytes = 0, prefix_evictions = 0;
  int prefix_entries = 0;
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = SlotDecoder::Load(testing::TinyLlamaDir(), testing::TinyAdapter(), Runtime());
    ASSERT_OK(model);
    model_ = model->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }

  std::unique_ptr<Engine> MakeEngine(EngineOptions options = {},
                                     EngineObserver* observer = nullptr) {
    options.threads = 1;
    auto engine = Engine::Create(model_, options, observer);
    EXPECT_OK(engine);
    return engine.ok() ? *std::move(engine) : nullptr;
  }


 public:
  static ContextInput Slots(const at::Tensor& slots, std::string encoder_id = "") {
    ContextInput part;
    part.kind = ContextInput::Kind::kSlots;
    part.slots = slots;
    part.encoder_id = encoder_id.empty() ? model_->accepted_encoder_id() : encoder_id;
    part.source_tokens = 4 * static_cast<int>(slots.size(0));
    return part;
  }
  static ContextInput Ids(std::vector<int> ids) {
    ContextInput part;
    part.kind = ContextInput::Kind::kTokenIds;
    part.token_ids = std::move(ids);
    return part;
  }
  static GenerateInput AeInput(const at::Tensor& slots, int max_new_tokens) {
    GenerateInput input;
    input.context.push_back(Slots(slots));
    input.template_name = "ae";
    input.params.max_new_tokens = max_new_tokens;
    return input;
  }
  // A distinct request per index: random token-id context + slots, raw template.
  static GenerateInput Varied(int index, int max_new_tokens) {
    GenerateInput input;
    std::vector<int> ids;
    for (int i = 0; i < 6 + index; ++i) ids.push_back(3 + (index * 37 + i * 11) % 380);
    input.context.push_back(Ids(ids));
    input.context.push_back(Slots(index % 2 == 0 ? IcaeFixture("slots") : IcaeFixture("slots40")));
    input.template_name = index % 3 == 0 ? "raw" : "icae-v1";
    input.prompt_ids = {5 + index, 9, 12};
    input.params.max_new_tokens = max_new_tokens;
    input.ignore_eos = true;
    return input;
  }

  // Runs `input` alone and returns its final event and ids.
  std::pair<GenerationEvent, std::vector<int>> RunAlone(Engine& engine, GenerateInput input) {
    Collector c;
    EXPECT_OK(engine.Enqueue(std::move(input), c.Sink()));
    GenerationEvent final = c.Wait();
    return {final, c.ids()};
  }

  static inline SlotDecoder* model_ = nullptr;
};

}  // namespace icae::decoder

#endif  // ICAE_TESTS_DECODER_SERVICE_ENGINE_TEST_UTIL_H_
