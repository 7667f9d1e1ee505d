// The trainer end to end on tiny models: the loss falls, resume is bit-identical, adapters
// round-trip through the loaders, the training layouts equal the serving ones, fine-tuning labels
// only the answer.
#include <cmath>
#include <cstdio>
#include <memory>

#include "common/model/adapter.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"
#include "common/model/weights.h"
#include "tests/tools/train_fixture.h"
#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_layout.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/lm_task.h"
#include "tools/train/optimizer.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::train::testing::ReadAll;
using ::icae::train::testing::TinyTrainOptions;

TEST_F(TrainTest, LmLossFallsAndExportLoads) {
  ScratchDir out;
  TrainOptions train = TinyTrainOptions(out.Join("lm"), 30);
  auto task = MustCreate(CreateLmTask(TinyLm(), train));
  ASSERT_NE(task, nullptr);
  const double before = FirstMetric(*task);
  auto result = RunTraining(*task, train, stderr);
  ASSERT_OK(result);
  EXPECT_TRUE(result->finished);
  EXPECT_EQ(result->steps_done, 30);
  EXPECT_LT(result->validation[0].second, before - 1.0)
      << "validation loss " << before << " -> " << result->validation[0].second;
  // The export is an HF directory the serving code loads, with the tokenizer beside it.
  auto model = Transformer::Load(out.Join("lm"), Runtime{});
  ASSERT_OK(model);
  EXPECT_EQ((*model)->config().hidden_size, 32);
  EXPECT_EQ(ReadAll(out.Join("lm/tokenizer.model")), ReadAll(dir_->Join("base/tokenizer.model")));
}

TEST_F(TrainTest, BfloatComputeTrainsToo) {
  ScratchDir out;
  TrainOptions train = TinyTrainOptions(out.Join("lm"), 20);
  train.dtype = "bfloat16";
  auto task = MustCreate(CreateLmTask(TinyLm(), train));
  ASSERT_NE(task, nullptr);
  const double before = FirstMetric(*task);
  auto result = RunTraining(*task, train, stderr);
  ASSERT_OK(result);
  EXPECT_LT(result->validation[0].second, before - 0.5);
}

// A run stopped at a checkpoint and resumed by a fresh task equals an uninterrupted one, bit for
// bit: weights, AdamW moments, data order and the objective RNG all come back.
TEST_F(TrainTest, ResumeIsBitIdenticalForLmAndPretrain) {
  for (const bool icae : {false, true}) {
    SCOPED_TRACE(icae ? "pretrain" : "lm");
    ScratchDir out;
    auto make = [&](const TrainOptions& t) {
      return MustCreate(icae ? CreatePretrainTask(TinyPretrain(), t) : CreateLmTask(TinyLm(), t));
    };
    TrainOptions straight = TinyTrainOptions(out.Join("straight"), 8);
    straight.warmup = 3;  // The schedule must line up across the resume too.
    auto a = make(straight);
    ASSERT_NE(a, nullptr);
    ASSERT_OK(RunTraining(*a, straight, stderr));

    TrainOptions split = straight;
    split.out = out.Join("split");
    split.checkpoint_every = 2;
    split.stop_at = 5;
    split.export_partial = true;  // The stopped run can be evaluated: <out>.step-0000005.
    auto b = make(split);
    ASSERT_NE(b, nullptr);
    auto first = RunTraining(*b, split, stderr);
    ASSERT_OK(first);
    EXPECT_FALSE(first->finished);
    EXPECT_EQ(first->steps_done, 5);
    const char* artefact = icae ? "adapter.safetensors" : "model.safetensors";
    EXPECT_FALSE(ReadAll(out.Join(std::string("split.step-0000005/") + artefact)).empty());
    EXPECT_TRUE(ReadAll(out.Join(std::string("split/") + artefact)).empty()) << "not finished";
    split.export_partial = false;
    split.stop_at = 0;
    auto c = make(split);  // A new process would start from the same freshly built task.
    ASSERT_NE(c, nullptr);
    auto second = RunTraining(*c, split, stderr);
    ASSERT_OK(second);
    EXPECT_TRUE(second->finished);

    const auto pa = a->Parameters(), pc = c->Parameters();
    ASSERT_EQ(pa.size(), pc.size());
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pc[i])) << "tensor " << i;
    const char* file = icae ? "adapter.safetensors" : "model.safetensors";
    EXPECT_EQ(ReadAll(out.Join(std::string("straight/") + file)),
              ReadAll(out.Join(std::string("split/") + file)));
  }
}

TEST_F(TrainTest, PretrainLossFallsAndAdapterRoundTrips) {
  ScratchDir out;
  TrainOptions train;
  PretrainOptions options;
  SmallCorpusRun(out, 40, &train, &options);
  options.lm_ratio = 0.1;
  auto task = MustCreate(CreatePretrainTask(options, train));
  ASSERT_NE(task, nullptr);
  double ae_before;
  {
    at::NoGradGuard no_grad;
    auto m = task->Validate();
    ASSERT_OK(m);
    ASSERT_EQ((*m)[1].first, "ae_loss");
    ae_before = (*m)[1].second;
  }
  auto result = RunTraining(*task, train, stderr);
  ASSERT_OK(result);
  EXPECT_LT(result->validation[1].second, ae_before - 0.2)
      << "autoencoding loss " << ae_before << " -> " << result->validation[1].second;

  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  auto adapter = LoadAdapter(out.Join("icae"), *config, /*with_lora=*/true);
  ASSERT_OK(adapter);
  EXPECT_EQ(adapter->config.r, 4);
  EXPECT_DOUBLE_EQ(adapter->config.lora_alpha, 8);
  EXPECT_EQ(adapter->config.mem_size, 4);
  EXPECT_EQ(adapter->config.compression_rate, 4);
  const std::vector<at::Tensor> params = task->Parameters();  // [q_a, q_b, v_a, v_b]*, memory
  ASSERT_EQ(params.size(), 4u * config->num_layers + 1);
  for (int l = 0; l < config->num_layers; ++l) {
    EXPECT_TRUE(at::equal(adapter->lora[l]["q_proj"].a, params[4 * l].detach()));
    EXPECT_TRUE(at::equal(adapter->lora[l]["q_proj"].b, params[4 * l + 1].detach()));
    EXPECT_TRUE(at::equal(adapter->lora[l]["v_proj"].a, params[4 * l + 2].detach()));
    EXPECT_TRUE(at::equal(adapter->lora[l]["v_proj"].b, params[4 * l + 3].detach()));
    EXPECT_GT(adapter->lora[l]["q_proj"].b.abs().max().item<float>(), 0) << "B was trained";
  }
  EXPECT_TRUE(at::equal(adapter->memory_embed, params.back().detach()));

  testing::ExpectServedSlotsEqualTrained(dir_->Join("base"), out.Join("icae"));
}

// What the trainer feeds the decoder is exactly what SlotDecoder::BuildPrompt serves.
TEST_F(TrainTest, TrainingLayoutsEqualServingPrompts) {
  ScratchDir out;
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 7, 0.5);
  ASSERT_OK(SaveIcaeAdapter(out.Join("a"), *config, icae, "tiny"));
  auto decoder = SlotDecoder::Load(dir_->Join("base"), out.Join("a"), Runtime{});
  ASSERT_OK(decoder);
  const Transformer& base = (*decoder)->transformer();
  at::NoGradGuard no_grad;
  at::Tensor slots = at::randn({8, config->hidden_size});
  ContextPart part;
  part.slots = slots;
  auto prompt = (*decoder)->Tokenize("What did the captain watch?");
  ASSERT_OK(prompt);
  const std::vector<int> answer = {40, 41, 42};
  const at::Tensor special = SpecialRows(icae);

  auto served_ae = (*decoder)->BuildPrompt(PromptTemplate::kAe, {part}, {});
  ASSERT_OK(served_ae);
  DecoderExample ae = AutoencodingExample(8, {40, 41}, 2);
  at::Tensor trained_ae = AssembleEmbeds(base, special, ae, slots);
  ASSERT_EQ(trained_ae.size(0), served_ae->embeds.size(0) + 2);
  EXPECT_TRUE(at::allclose(trained_ae.narrow(0, 0, 9), served_ae->embeds));

  // Continuation trains on the raw template: [slots] then the text.
  auto served_raw = (*decoder)->BuildPrompt(PromptTemplate::kRaw, {part}, *prompt);
  ASSERT_OK(served_raw);
  DecoderExample raw = ContinuationExample(8, *prompt);
  at::Tensor trained_raw = AssembleEmbeds(base, special, raw, slots);
  ASSERT_EQ(trained_raw.size(0), served_raw->embeds.size(0));
  EXPECT_TRUE(at::allclose(trained_raw, served_raw->embeds));

  for (PromptTemplate t : {PromptTemplate::kIcaeV2Instruct, PromptTemplate::kIcaeV1}) {
    SCOPED_TRACE(std::string(PromptTemplateName(t)));
    auto served = (*decoder)->BuildPrompt(t, {part}, *prompt);
    ASSERT_OK(served);
    auto example = FinetuneExample(t, 8, *prompt, answer, (*decoder)->template_tokens(), 2);
    ASSERT_OK(example);
    at::Tensor trained = AssembleEmbeds(base, special, *example, slots);
    const int64_t prompt_len = served->embeds.size(0);
    ASSERT_EQ(trained.size(0), prompt_len + 3);
    EXPECT_TRUE(at::allclose(trained.narrow(0, 0, prompt_len), served->embeds));
  }
}

// Fine-tuning: only the answer and its EOS carry labels, and the loss is the cross-entropy of
// exactly those positions.
TEST_F(TrainTest, FinetuneLossCoversOnlyTheAnswer) {
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  const std::vector<int> prompt = {30, 31, 32, 33}, answer = {50, 51, 52}, open = {60, 61},
                         close = {62, 63};
  for (PromptTemplate t : {PromptTemplate::kIcaeV2Instruct, PromptTemplate::kIcaeV1}) {
    SCOPED_TRACE(std::string(PromptTemplateName(t)));
    auto example = FinetuneExample(t, 4, prompt, answer, TemplateTokens{1, open, close}, 2);
    ASSERT_OK(example);
    const int len = example->length();
    const int answer_start = len - 3;  // The answer's tokens are the last 3 positions.
    std::vector<int> expected(len, kIgnore);
    expected[answer_start - 1] = 50;  // The last prompt position predicts the first answer id.
    expected[answer_start] = 51;
    expected[answer_start + 1] = 52;
    expected[answer_start + 2] = 2;  // The last answer token predicts EOS.
    EXPECT_EQ(example->labels, expected);

    auto base = Transformer::Load(dir_->Join("base"), Runtime{});
    ASSERT_OK(base);
    IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 3, 0.5);
    at::NoGradGuard no_grad;
    at::Tensor slots = at::randn({4, config->hidden_size});
    BatchLoss loss = ExamplesLoss(**base, SpecialRows(icae), {*example}, {slots});
    EXPECT_EQ(loss.labelled, 4);
    at::Tensor embeds = AssembleEmbeds(**base, SpecialRows(icae), *example, slots);
    at::Tensor logits = (*base)->Logits(
        (*base)->Forward(embeds.unsqueeze(0), at::arange(len, at::kLong).unsqueeze(0))[0]);
    double manual = 0;
    for (int p = answer_start - 1; p < len; ++p) {
      manual -= at::log_softmax(logits[p], -1)[expected[p]].item<double>();
    }
    EXPECT_NEAR(loss.mean_loss.item<double>(), manual / 4, 1e-4);
  }
}

}  // namespace
}  // namespace icae::train
