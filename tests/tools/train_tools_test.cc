// The trainer's helpers on tiny models: the capacity probe, base rescaling, per-parameter
// learning rates, LM training continued from a model with copied spans.
#include <cmath>
#include <cstdio>
#include <memory>

#include "common/model/adapter.h"
#include "common/model/transformer.h"
#include "common/model/weights.h"
#include "tests/tools/train_fixture.h"
#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_layout.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/lm_task.h"
#include "tools/train/optimizer.h"
#include "tools/train/probe.h"
#include "tools/train/rescale.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::train::testing::ReadAll;
using ::icae::train::testing::TinyTrainOptions;

// The capacity probe lowers the teacher-forced loss by optimising slots directly, with the ae
// layout (adapter) and the raw one (no adapter), and scores the adapter's own slots beside.
TEST_F(TrainTest, ProbeLowersTheLossOnTinyModel) {
  ScratchDir out;
  testing::WriteCorpus(out.Join("text.txt"), 4, 5);
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 11, 0.5);
  ASSERT_OK(SaveIcaeAdapter(out.Join("a"), *config, icae, "tiny"));
  for (const bool with_adapter : {false, true}) {
    SCOPED_TRACE(with_adapter ? "ae template" : "raw template");
    ProbeOptions o;
    o.model = dir_->Join("base");
    o.adapter = with_adapter ? out.Join("a") : "";
    o.file = out.Join("text.txt");
    o.span_tokens = 16;
    o.slots = "2,4";
    o.spans = 2;
    o.steps = 60;
    o.json = out.Join("probe.json");
    auto result = RunProbe(o, nullptr);
    ASSERT_OK(result);
    ASSERT_EQ(result->rows.size(), with_adapter ? 3u : 2u);
    if (with_adapter) {
      EXPECT_EQ(result->rows[0].source, "adapter");
      EXPECT_EQ(result->rows[0].slots, 4);
    }
    for (const ProbeRow& row : result->rows) {
      EXPECT_GE(row.accuracy, 0.0);
      EXPECT_LE(row.accuracy, 1.0);
      if (row.source != "optimised") continue;
      EXPECT_LT(row.loss, row.initial_loss - 0.5)
          << row.slots << " slots: " << row.initial_loss << " -> " << row.loss;
    }
    EXPECT_NE(FormatProbeTable(o, *result).find("optimised"), std::string::npos);
    EXPECT_NE(ReadAll(out.Join("probe.json")).find("\"rows\""), std::string::npos);
  }
  ProbeOptions bad;
  bad.model = dir_->Join("base");
  bad.file = out.Join("text.txt");
  bad.slots = "4,x";
  EXPECT_FALSE(RunProbe(bad, nullptr).ok());
}

// --objective continuation: slots optimised to make the decoder continue each span as it does
// from the span's text (KL alone) come closer to the text's predictions than where they started,
// and the perplexities are reported beside the text's.
TEST_F(TrainTest, ProbeContinuationObjectiveDistilsTheTextsPredictions) {
  ScratchDir out;
  testing::WriteCorpus(out.Join("text.txt"), 4, 5);
  ProbeOptions o;
  o.model = dir_->Join("base");
  o.file = out.Join("text.txt");
  o.span_tokens = 16;
  o.slots = "4";
  o.spans = 2;
  o.steps = 60;
  o.objective = "continuation";
  o.json = out.Join("probe.json");
  auto result = RunProbe(o, nullptr);
  ASSERT_OK(result);
  EXPECT_TRUE(result->continuation);
  EXPECT_GT(result->text_ppl, 1.0);
  ASSERT_EQ(result->rows.size(), 1u);
  const ProbeRow& row = result->rows[0];
  EXPECT_EQ(row.source, "optimised");
  EXPECT_GT(row.initial_loss, 0.0);
  EXPECT_LT(row.loss, 0.5 * row.initial_loss) << row.initial_loss << " -> " << row.loss;
  EXPECT_GT(row.ppl, 1.0);
  EXPECT_NE(FormatProbeTable(o, *result).find("vs text"), std::string::npos);
  EXPECT_NE(ReadAll(out.Join("probe.json")).find("\"text_ppl\""), std::string::npos);
  // Fitted on the first half, scored on the second: the scored rows cover only those positions
  // (a different text perplexity).
  o.fit_tokens = 8;
  auto held_out = RunProbe(o, nullptr);
  ASSERT_OK(held_out);
  EXPECT_NE(held_out->text_ppl, result->text_ppl);
  ASSERT_EQ(held_out->rows.size(), 1u);
  EXPECT_GT(held_out->rows[0].ppl, 1.0);
  EXPECT_GE(held_out->rows[0].loss, 0.0);
  EXPECT_NE(FormatProbeTable(o, *held_out).find("fitted on its first 8"), std::string::npos);
  // --from-adapter: the adapter's own slots are the start (row "moved"); its first loss is the
  // adapter's slots' KL on the fitted positions, so fitting lowers it from there.
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 11, 0.5);
  ASSERT_OK(SaveIcaeAdapter(out.Join("a"), *config, icae, "tiny"));
  o.adapter = out.Join("a");
  o.from_adapter = true;
  o.slots = "";
  auto moved = RunProbe(o, nullptr);
  ASSERT_OK(moved);
  ASSERT_EQ(moved->rows.size(), 2u);
  EXPECT_EQ(moved->rows[0].source, "adapter");
  EXPECT_EQ(moved->rows[1].source, "moved");
  o.normed = true;  // The adapter's slots as they are: no re-norming.
  EXPECT_FALSE(RunProbe(o, nullptr).ok());
  o.normed = false;
  o.adapter = "";
  EXPECT_FALSE(RunProbe(o, nullptr).ok());
  o.from_adapter = false;
  o.fit_tokens = 15;  // Nothing left to score.
  EXPECT_FALSE(RunProbe(o, nullptr).ok());
  o.fit_tokens = 0;
  o.objective = "copy";
  EXPECT_FALSE(RunProbe(o, nullptr).ok());
}

// The rescaled base computes the same logits for any tokens, while its final-normed hidden states
// (the slots an encoder emits) shrink by c next to its token embeddings, which grow by c.
TEST_F(TrainTest, RescaleKeepsTheFunctionAndShrinksSlots) {
  ScratchDir out;
  for (const double factor : {0.0, 4.0}) {
    SCOPED_TRACE(factor);
    RescaleOptions o;
    o.model = dir_->Join("base");
    o.out = out.Join("scaled");
    o.factor = factor;
    auto c = RunRescale(o);
    ASSERT_OK(c);
    if (factor > 0) {
      EXPECT_EQ(*c, factor);
    }
    EXPECT_EQ(std::exp2(std::round(std::log2(*c))), *c) << "a power of two";
    auto before = Transformer::Load(o.model, Runtime{});
    auto after = Transformer::Load(o.out, Runtime{});
    ASSERT_OK(before);
    ASSERT_OK(after);
    at::NoGradGuard no_grad;
    at::Tensor ids = at::tensor(std::vector<int64_t>{1, 5, 17, 42, 99, 3, 250, 8}).unsqueeze(0);
    at::Tensor positions = at::arange(8, at::kLong).unsqueeze(0);
    at::Tensor h0 = (*before)->Forward((*before)->Embed(ids), positions);
    at::Tensor h1 = (*after)->Forward((*after)->Embed(ids), positions);
    EXPECT_LT(((*after)->Logits(h1) - (*before)->Logits(h0)).abs().max().item<float>(), 1e-3);
    EXPECT_LT((h1 * *c - h0).abs().max().item<float>(), 1e-3);
    EXPECT_NEAR((*after)->Embed(ids).norm().item<double>(),
                *c * (*before)->Embed(ids).norm().item<double>(), 1e-3);
    EXPECT_EQ(ReadAll(out.Join("scaled/tokenizer.model")),
              ReadAll(dir_->Join("base/tokenizer.model")));
  }
  RescaleOptions missing;
  missing.out = out.Join("x");
  EXPECT_FALSE(RunRescale(missing).ok());
}

// Per-parameter learning-rate multipliers: 0 freezes a tensor, 2 doubles its first Adam step
// (which is lr * sign(g) after bias correction), unscaled ones move by lr.
TEST(AdamWTest, LearningRateScalesApplyPerParameter) {
  std::vector<at::Tensor> params = {at::zeros({3}).requires_grad_(true),
                                    at::zeros({3}).requires_grad_(true),
                                    at::zeros({3}).requires_grad_(true)};
  AdamW adam(params, AdamWConfig{0.9, 0.999, 1e-12, 0.0});
  adam.SetLearningRateScales({1.0, 0.0, 2.0});
  for (at::Tensor& p : params) (p * at::ones({3})).sum().backward();
  adam.Step(0.1);
  EXPECT_NEAR(params[0][0].item<float>(), -0.1, 1e-5);
  EXPECT_EQ(params[1][0].item<float>(), 0.0f);
  EXPECT_NEAR(params[2][0].item<float>(), -0.2, 1e-5);
}

// Continued training from a model directory, with copied spans in the windows.
TEST_F(TrainTest, LmContinuesFromInitModelWithCopySpans) {
  ScratchDir out;
  TrainOptions train = TinyTrainOptions(out.Join("lm"), 4);
  LmOptions o = TinyLm();
  o.init_model = dir_->Join("base");
  o.copy_prob = 1.0;
  o.seq_len = 40;
  auto task = MustCreate(CreateLmTask(o, train));
  ASSERT_NE(task, nullptr);
  auto base = Transformer::Load(dir_->Join("base"), Runtime{});
  ASSERT_OK(base);
  EXPECT_TRUE(at::allclose(task->Parameters()[0], (*base)->weights().embed));
  ASSERT_OK(RunTraining(*task, train, stderr));
  auto model = Transformer::Load(out.Join("lm"), Runtime{});
  ASSERT_OK(model);
  EXPECT_EQ((*model)->config().hidden_size, (*base)->config().hidden_size);
  EXPECT_EQ((*model)->config().num_layers, (*base)->config().num_layers);
  EXPECT_FALSE(at::allclose(task->Parameters()[0], (*base)->weights().embed)) << "it trained";
}

}  // namespace
}  // namespace icae::train
