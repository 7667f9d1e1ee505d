// icae-train pretrain --min-span-tokens: each sample compresses a length drawn in
// [min, --span-tokens], so spans shorter than one segment (and documents' last segments) are
// trained too. The flags are checked; a run with short spans learns to autoencode them.
#include <map>
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

}  // namespace
}  // namespace icae::train
