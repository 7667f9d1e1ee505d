// The continuation distillation term of icae-train pretrain (--kd-weight): the teacher is the base
// reading the span's text, the student the base reading its slots, and the term is
// KL(teacher || student) at every continuation position.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "common/model/transformer.h"
#include "tests/tools/tiny_icae_fixture.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_layout.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;

class DistillTest : public testing::TinyIcaeTest {
 protected:
  static PretrainOptions Options() {
    PretrainOptions o = TinyOptions();
    o.lm_ratio = 1.0;  // Continuation samples only: every sample carries the term.
    return o;
  }
};

// The term equals the KL summed by hand from the two models' logits, is added to the
// cross-entropy with its weight, and vanishes when the teacher is the student itself.
TEST_F(DistillTest, TermIsTheKlToTheTeacherAndZeroAgainstItself) {
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  auto base = Transformer::Load(dir_->Join("base"), Runtime{});
  ASSERT_OK(base);
  IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 3, 0.5);
  at::NoGradGuard no_grad;
  const at::Tensor special = SpecialRows(icae);
  const std::vector<int> span = {5, 17, 42, 99, 3, 250, 8, 61, 77, 300, 12, 13, 14, 15, 16, 40};
  const std::vector<int> continuation = {20, 21, 22, 23, 24, 25};
  const at::Tensor slots = at::randn({4, config->hidden_size});
  const at::Tensor no_slots = at::empty({0, config->hidden_size});
  const DecoderExample student = ContinuationExample(4, continuation);
  const DecoderExample text = TargetExample({{PromptPiece::kTokens, span}}, 0, continuation, kIgnore);
  ASSERT_EQ(text.labels.size(), span.size() + continuation.size());

  const TeacherLogProbs teacher = LabelledLogProbs(**base, special, {text}, {no_slots});
  ASSERT_EQ(teacher.size(), 1u);
  ASSERT_EQ(teacher[0].size(0), static_cast<int64_t>(continuation.size()));

  // By hand: the student's log-probabilities at its labelled positions.
  at::Tensor embeds = AssembleEmbeds(**base, special, student, slots);
  const int64_t len = embeds.size(0);
  at::Tensor logits = (*base)->Logits(
      (*base)->Forward(embeds.unsqueeze(0), at::arange(len, at::kLong).unsqueeze(0))[0]);
  double kl = 0, ce = 0;
  int row = 0;
  for (int64_t p = 0; p < len; ++p) {
    if (student.labels[p] == kIgnore) continue;
    at::Tensor q = at::log_softmax(logits[p], -1);
    at::Tensor t = teacher[0][row++];
    kl += (t.exp() * (t - q)).sum().item<double>();
    ce -= q[student.labels[p]].item<double>();
  }
  ASSERT_EQ(row, static_cast<int>(continuation.size()));
  EXPECT_GT(kl, 1e-3) << "slots and text predict alike: the test shows nothing";

  const double weight = 0.7;
  BatchLoss loss = ExamplesLoss(**base, special, {student}, {slots}, teacher, weight);
  EXPECT_EQ(loss.kl_count, static_cast<int64_t>(continuation.size()));
  EXPECT_NEAR(loss.kl_sum, kl, 1e-3 * std::max(1.0, kl));
  EXPECT_NEAR(loss.mean_loss.item<double>(), (ce + weight * kl) / row, 1e-4);

  // Without a teacher, or with weight 0, the loss is the cross-entropy alone.
  EXPECT_NEAR(ExamplesLoss(**base, special, {student}, {slots}).mean_loss.item<double>(), ce / row,
              1e-4);
  EXPECT_NEAR(ExamplesLoss(**base, special, {student}, {slots}, teacher, 0).mean_loss.item<double>(),
              ce / row, 1e-4);

  // The student as its own teacher: nothing to learn.
  const TeacherLogProbs itself = LabelledLogProbs(**base, special, {student}, {slots});
  BatchLoss self = ExamplesLoss(**base, special, {student}, {slots}, itself, 1.0);
  EXPECT_LT(std::abs(self.kl_sum), 1e-4);

  // A teacher of the wrong length is an error, not a silent misalignment.
  const TeacherLogProbs short_teacher = {teacher[0].narrow(0, 0, 2)};
  EXPECT_ANY_THROW(ExamplesLoss(**base, special, {student}, {slots}, short_teacher, 1.0));
}

// Training with the term ends nearer the teacher than the same run without it (same seed, same
// samples), while the frozen teacher's own continuation perplexity (lm_text_ppl) stays exactly
// where it was; the gap to the text is reported. A negative weight is refused.
TEST_F(DistillTest, TrainingLowersTheKlAndReportsTheGap) {
  std::map<double, std::map<std::string, double>> after;
  std::map<std::string, double> before;
  for (double weight : {0.0, 4.0}) {
    ScratchDir out;
    TrainOptions train = testing::TinyTrainOptions(out.Join("icae"), 80);
    train.batch = 4;
    train.lr = 2e-2;
    train.min_lr_ratio = 0.5;
    PretrainOptions options = Options();
    options.kd_weight = weight;
    auto task = CreatePretrainTask(options, train);
    ASSERT_OK(task);
    before = Metrics(**task);
    ASSERT_TRUE(before.count("kd_kl") && before.count("lm_text_ppl") && before.count("lm_gap"));
    EXPECT_NEAR(before["lm_gap"], before["lm_ppl"] / before["lm_text_ppl"] - 1, 1e-9);
    ASSERT_OK(RunTraining(**task, train, stderr));
    after[weight] = Metrics(**task);
    EXPECT_DOUBLE_EQ(after[weight]["lm_text_ppl"], before["lm_text_ppl"]);
  }
  EXPECT_LT(after[4.0]["kd_kl"], 0.8 * after[0.0]["kd_kl"])
      << "kd_kl before " << before["kd_kl"] << ", after without the term " << after[0.0]["kd_kl"]
      << ", with it " << after[4.0]["kd_kl"];

  PretrainOptions options = Options();
  options.kd_weight = -1;
  EXPECT_EQ(CreatePretrainTask(options, testing::TinyTrainOptions("unused", 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace icae::train
