// Fixture of the small pretraining tests: a 3-document corpus (train = valid) and tiny-llama with
// a tokenizer trained at test time, made once per suite; tiny ICAE options (r 4, mem_size 4,
// rate 4: 16-token segments) and the validation metrics by name.
#ifndef ICAE_TESTS_TOOLS_TINY_ICAE_FIXTURE_H_
#define ICAE_TESTS_TOOLS_TINY_ICAE_FIXTURE_H_

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/train_task.h"

namespace icae::train::testing {

class TinyIcaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new icae::testing::ScratchDir();
    WriteCorpus(dir_->Join("small.txt"), 3, 3);
    ASSERT_OK(MakeTokenizedTinyBase(dir_->Join("base")));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static PretrainOptions TinyOptions() {
    return TinyPretrainOptions(dir_->Join("base"), dir_->Join("small.txt"),
                               dir_->Join("small.txt"));
  }
  static std::map<std::string, double> Metrics(TrainTask& task) {
    at::NoGradGuard no_grad;
    auto m = task.Validate();
    EXPECT_OK(m);
    std::map<std::string, double> out;
    if (m.ok())
      for (const auto& [name, value] : *m) out[name] = value;
    return out;
  }

  inline static icae::testing::ScratchDir* dir_ = nullptr;
};

}  // namespace icae::train::testing

#endif  // ICAE_TESTS_TOOLS_TINY_ICAE_FIXTURE_H_
