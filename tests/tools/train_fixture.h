// The trainer tests' fixture: a tiny tokenized base and a small corpus written once per test
// binary, and option builders for the LM and ICAE tasks.
#ifndef ICAE_TESTS_TOOLS_TRAIN_FIXTURE_H_
#define ICAE_TESTS_TOOLS_TRAIN_FIXTURE_H_

#include <memory>

#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/lm_task.h"
#include "tools/train/trainer.h"

namespace icae::train {

class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ::icae::testing::ScratchDir();
    testing::WriteCorpus(dir_->Join("train.txt"), 40, 1);
    testing::WriteCorpus(dir_->Join("valid.txt"), 6, 2);
    ASSERT_OK(testing::MakeTokenizedTinyBase(dir_->Join("base")));
  }
  static void TearDownTestSuite() { delete dir_; }

  static LmOptions TinyLm() { return testing::TinyLmOptions(dir_->path(), 8, 1); }
  static PretrainOptions TinyPretrain() {
    return testing::TinyPretrainOptions(dir_->Join("base"), dir_->Join("train.txt"),
                                        dir_->Join("valid.txt"));
  }
  // A run on a 3-document corpus it keeps seeing (the random frozen tiny-llama is a poor decoder,
  // so the check is that the adapter learns to autoencode its own training windows).
  static void SmallCorpusRun(const ::icae::testing::ScratchDir& out, int steps, TrainOptions* train,
                             PretrainOptions* options) {
    testing::WriteCorpus(out.Join("small.txt"), 3, 3);
    *train = testing::TinyTrainOptions(out.Join("icae"), steps);
    train->batch = 4;
    train->lr = 2e-2;
    train->min_lr_ratio = 0.5;
    *options = TinyPretrain();
    options->train = options->valid = out.Join("small.txt");
  }
  static std::unique_ptr<TrainTask> MustCreate(absl::StatusOr<std::unique_ptr<TrainTask>> task) {
    EXPECT_OK(task);
    return task.ok() ? *std::move(task) : nullptr;
  }
  static double FirstMetric(TrainTask& task) {
    at::NoGradGuard no_grad;
    auto m = task.Validate();
    EXPECT_OK(m);
    return m.ok() ? (*m)[0].second : 0;
  }

  inline static ::icae::testing::ScratchDir* dir_ = nullptr;
};

}  // namespace icae::train

#endif  // ICAE_TESTS_TOOLS_TRAIN_FIXTURE_H_
