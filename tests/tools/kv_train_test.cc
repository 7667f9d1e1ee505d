// icae-train pretrain --slot-kind kv (500xCompressor): the trainer differentiates through the
// same encoder pass and the same decoder reading of KV slots that serving runs, the loss falls,
// and the exported adapter is a KV adapter whose served slots equal the trained ones.
#include <cmath>
#include <vector>

#include "common/model/adapter.h"
#include "common/model/compressor.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"
#include "tests/tools/tiny_icae_fixture.h"
#include "tools/train/icae_layout.h"
#include "tools/train/probe.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;

class KvTrainTest : public testing::TinyIcaeTest {};

// The loss the trainer computes for KV slots between template tokens is the cross-entropy of the
// logits the serving decoder gives for the same prompt and answer.
TEST_F(KvTrainTest, TrainingLossIsTheServedCrossEntropy) {
  ScratchDir out;
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 7, 0.5);
  icae.config.slot_kind = SlotKind::kKv;
  ASSERT_OK(SaveIcaeAdapter(out.Join("a"), *config, icae, "tiny"));
  auto decoder = SlotDecoder::Load(dir_->Join("base"), out.Join("a"), Runtime{});
  ASSERT_OK(decoder);
  ASSERT_EQ((*decoder)->slot_kind(), SlotKind::kKv);
  const Transformer& base = (*decoder)->transformer();
  at::NoGradGuard no_grad;
  const at::Tensor slots =
      at::randn({config->num_layers, 2, config->num_kv_heads, 6, config->head_dim});
  const std::vector<int> prompt = {50, 51, 52}, answer = {40, 41, 42};
  auto example = FinetuneExample(PromptTemplate::kIcaeV2Instruct, 6, prompt, answer,
                                 (*decoder)->template_tokens(), 2);
  ASSERT_OK(example);
  // An embedding-slot example in the same batch pads and reads as before.
  const DecoderExample other = AutoencodingExample(4, {60, 61, 62}, 2);
  const at::Tensor other_slots = at::randn({4, config->hidden_size});
  BatchLoss trained = ExamplesLoss(base, SpecialRows(icae), {*example, other}, {slots, other_slots});
  BatchLoss trained_alone = ExamplesLoss(base, SpecialRows(icae), {*example}, {slots});

  ContextPart part;
  part.slots = slots;
  part.kind = SlotKind::kKv;
  auto served = (*decoder)->BuildPrompt(PromptTemplate::kIcaeV2Instruct, {part}, prompt);
  ASSERT_OK(served);
  KVCache cache = base.NewCache(served->positions() + 4);
  at::Tensor hidden = at::cat(
      {PrefillPrompt(base, *served, 0, served->positions(), cache),
       base.Prefill(base.Embed(at::tensor(std::vector<int64_t>{40, 41, 42}, at::kLong)), cache)});
  at::Tensor logits = base.Logits(hidden);  // [positions + 3, vocab]
  double nll = 0;
  int labelled = 0;
  for (int p = 0; p < example->length(); ++p) {
    const int label = example->labels[p];
    if (label == kIgnore) continue;
    nll -= at::log_softmax(logits[p].to(at::kDouble), -1)[label].item<double>();
    ++labelled;
  }
  ASSERT_EQ(labelled, 4);  // The answer and EOS.
  ASSERT_EQ(trained_alone.labelled, 4);
  EXPECT_NEAR(trained_alone.mean_loss.item<double>(), nll / labelled, 1e-4);
  EXPECT_EQ(trained.labelled, 4 + 4);
}

TEST_F(KvTrainTest, PretrainLossFallsAndTheServedSlotsAreTheTrainedOnes) {
  ScratchDir out;
  TrainOptions train = testing::TinyTrainOptions(out.Join("icae"), 40);
  train.batch = 4;
  train.lr = 2e-2;
  PretrainOptions options = TinyOptions();
  options.slot_kind = "kv";
  options.lm_ratio = 0.2;
  auto task = CreatePretrainTask(options, train);
  ASSERT_OK(task);
  const double before = Metrics(**task)["ae_loss"];
  auto result = RunTraining(**task, train, stderr);
  ASSERT_OK(result);
  const double after = Metrics(**task)["ae_loss"];
  EXPECT_LT(after, before - 0.2) << "autoencoding loss " << before << " -> " << after;

  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  auto adapter = LoadAdapter(out.Join("icae"), *config, /*with_lora=*/true);
  ASSERT_OK(adapter);
  EXPECT_EQ(adapter->config.slot_kind, SlotKind::kKv);
  testing::ExpectServedSlotsEqualTrained(dir_->Join("base"), out.Join("icae"));

  // An adapter keeps its kind: continuing it as the other kind is refused.
  PretrainOptions resume = TinyOptions();
  resume.init_adapter = out.Join("icae");
  resume.slot_kind = "embedding";
  resume.slot_kind_given = true;
  EXPECT_FALSE(CreatePretrainTask(resume, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
}

// The probe optimises slots of the adapter's kind: with a KV adapter, every layer's keys and values.
TEST_F(KvTrainTest, ProbeOptimisesKvSlotsForAKvAdapter) {
  ScratchDir out;
  testing::WriteCorpus(out.Join("text.txt"), 4, 5);
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  IcaeTrainables icae = *InitIcae(*config, 4, 8, {"q_proj", "v_proj"}, 4, 4, 11, 0.5);
  icae.config.slot_kind = SlotKind::kKv;
  ASSERT_OK(SaveIcaeAdapter(out.Join("a"), *config, icae, "tiny"));
  ProbeOptions o;
  o.model = dir_->Join("base");
  o.adapter = out.Join("a");
  o.file = out.Join("text.txt");
  o.span_tokens = 16;
  o.slots = "2";
  o.spans = 2;
  o.steps = 60;
  auto result = RunProbe(o, nullptr);
  ASSERT_OK(result);
  ASSERT_EQ(result->rows.size(), 2u);
  EXPECT_EQ(result->rows[0].source, "adapter");
  EXPECT_EQ(result->rows[0].slots, 4);
  EXPECT_EQ(result->rows[1].slots, 2);
  EXPECT_LT(result->rows[1].loss, result->rows[1].initial_loss - 0.5)
      << result->rows[1].initial_loss << " -> " << result->rows[1].loss;
  o.normed = true;  // Final-normed vectors are what an embedding encoder emits, not KV.
  EXPECT_FALSE(RunProbe(o, nullptr).ok());
}

}  // namespace
}  // namespace icae::train
