// icae-train pretrain --min-span-tokens: each sample compresses a length drawn in
// [min, --span-tokens], so spans shorter than one segment (and documents' last segments) are
// trained too. The flags are checked; a run with short spans learns to autoencode them.
#include <algorithm>
#include <map>
#include <random>
#include <vector>
#include <string>

#include "tests/tools/tiny_icae_fixture.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;

class SpanLengthTest : public testing::TinyIcaeTest {
 protected:
  static PretrainOptions Options() {
    PretrainOptions o = TinyOptions();
    o.lm_ratio = 0.0;
    return o;
  }
  static double AeLoss(TrainTask& task) { return Metrics(task).at("ae_loss"); }
};

TEST_F(SpanLengthTest, FlagsAreChecked) {
  TrainOptions train = testing::TinyTrainOptions("unused", 1);
  PretrainOptions o = Options();
  o.min_span_tokens = -1;
  EXPECT_EQ(CreatePretrainTask(o, train).status().code(), absl::StatusCode::kInvalidArgument);
  o.min_span_tokens = 4;
  o.short_span_ratio = 1.5;
  EXPECT_EQ(CreatePretrainTask(o, train).status().code(), absl::StatusCode::kInvalidArgument);
  o.short_span_ratio = 0.5;
  o.min_span_tokens = 17;  // above --span-tokens (0 = mem_size * rate = 16)
  auto refused = CreatePretrainTask(o, train);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("exceeds"));
}

TEST_F(SpanLengthTest, ShortSpansTrain) {
  ScratchDir out;
  TrainOptions train = testing::TinyTrainOptions(out.Join("icae"), 60);
  train.batch = 4;
  train.lr = 2e-2;
  train.min_lr_ratio = 0.5;
  PretrainOptions o = Options();
  o.min_span_tokens = 4;
  o.short_span_ratio = 0.5;
  auto task = CreatePretrainTask(o, train);
  ASSERT_OK(task);
  const double before = AeLoss(**task);
  auto result = RunTraining(**task, train, stderr);
  ASSERT_OK(result);
  const double after = AeLoss(**task);
  EXPECT_LT(after, before - 0.2) << "ae_loss " << before << " -> " << after;
  EXPECT_THAT((*task)->Recipe(), ::testing::HasSubstr("min_span=4 short_span_ratio=0.5"));
}

// --copy-continuation-prob: the continuation gets one piece of its own span, 8..32 tokens, and
// nothing else changes.
TEST(CopySpanIntoContinuationTest, CopiesOnePieceOfTheSpanIntoTheContinuation) {
  std::mt19937_64 rng(7);
  for (int len : {16, 64, 128}) {
    const int span = 128;
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<int> w(len + span + 5);
      for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int>(i);
      const std::vector<int> before = w;
      CopySpanIntoContinuation(w, len, span, rng);
      ASSERT_TRUE(std::equal(w.begin(), w.begin() + len, before.begin())) << "span changed";
      ASSERT_TRUE(std::equal(w.begin() + len + span, w.end(), before.begin() + len + span))
          << "beyond the continuation";
      std::vector<int> changed;
      for (int i = len; i < len + span; ++i) {
        if (w[i] != before[i]) changed.push_back(i);
      }
      const int n = static_cast<int>(changed.size());
      ASSERT_GE(n, 8) << "len " << len;
      ASSERT_LE(n, std::min(32, len / 2));
      ASSERT_EQ(changed.back() - changed.front() + 1, n) << "one contiguous piece";
      const int src = w[changed.front()];
      ASSERT_GE(src, 0);
      ASSERT_LE(src + n, len) << "copied from the span";
      for (int k = 0; k < n; ++k) ASSERT_EQ(w[changed.front() + k], src + k);
    }
  }
  std::vector<int> tiny(8 + 128);  // A span too short for an 8-token piece: unchanged.
  const std::vector<int> copy = tiny;
  CopySpanIntoContinuation(tiny, 8, 128, rng);
  EXPECT_EQ(tiny, copy);
}

TEST_F(SpanLengthTest, CopyContinuationFlagIsCheckedAndRecorded) {
  TrainOptions train = testing::TinyTrainOptions("unused", 1);
  PretrainOptions o = Options();
  o.copy_continuation_prob = 1.5;
  EXPECT_EQ(CreatePretrainTask(o, train).status().code(), absl::StatusCode::kInvalidArgument);
  o.copy_continuation_prob = 0.5;
  o.lm_ratio = 1.0;
  auto task = CreatePretrainTask(o, train);
  ASSERT_OK(task);
  EXPECT_THAT((*task)->Recipe(), ::testing::HasSubstr("copy_continuation=0.5"));
  ASSERT_OK((*task)->NextLoss());
}

}  // namespace
}  // namespace icae::train
