// icae-train cross: a small encoder (random, or the first layers of a model) plus a projector
// trains against the frozen decoder with the pretraining objectives, the loss falls, and the
// exported package is served exactly as trained: the Compressor's slots are the trainer's, the
// decoder it was trained for accepts it, and training goes on from it.
#include <cmath>
#include <iostream>
#include <vector>

#include "common/model/compressor.h"
#include "common/model/cross_encoder.h"
#include "common/model/slot_decoder.h"
#include "tests/tools/tiny_icae_fixture.h"
#include "tools/train/cross_setup.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;

class CrossTrainTest : public testing::TinyIcaeTest {
 protected:
  static PretrainOptions CrossOptions() {
    PretrainOptions o = TinyOptions();
    o.cross = true;
    o.cross_options.encoder_layers = 1;
    o.cross_options.encoder_hidden = 32;
    o.cross_options.encoder_heads = 2;
    return o;
  }
};

TEST_F(CrossTrainTest, LossFallsAndTheServedSlotsAreTheTrainedOnes) {
  ScratchDir out;
  TrainOptions train = testing::TinyTrainOptions(out.Join("cross"), 40);
  train.batch = 4;
  train.lr = 2e-2;
  PretrainOptions options = CrossOptions();
  options.lm_ratio = 0.2;
  auto task = CreatePretrainTask(options, train);
  ASSERT_OK(task);
  // The small encoder's weights, its memory rows, the special rows and the projector train.
  EXPECT_GT((*task)->Parameters().size(), 10u);
  const double before = Metrics(**task)["ae_loss"];
  auto result = RunTraining(**task, train, stderr);
  ASSERT_OK(result);
  const double after = Metrics(**task)["ae_loss"];
  EXPECT_LT(after, before - 0.2) << "autoencoding loss " << before << " -> " << after;

  const std::string package = out.Join("cross");
  ASSERT_TRUE(IsCrossEncoderPackage(package));
  auto cross = LoadCrossEncoder(package);
  ASSERT_OK(cross);
  EXPECT_EQ(cross->config.encoder_hidden, 32);
  EXPECT_EQ(cross->config.mem_size, 4);
  auto compressor = Compressor::Load(dir_->Join("base"), package, Runtime{});
  ASSERT_OK(compressor);
  EXPECT_TRUE((*compressor)->is_cross());
  auto decoder = SlotDecoder::Load(dir_->Join("base"), package, Runtime{});
  ASSERT_OK(decoder);
  EXPECT_EQ((*decoder)->accepted_encoder_id(), (*compressor)->encoder_id());

  // Served slots = the trainer's encoder pass on the exported package.
  auto trainables = CrossFromPackage(package);
  ASSERT_OK(trainables);
  const std::vector<int> span = {5, 17, 42, 99, 3, 250, 8, 61, 77, 300, 12, 13, 14, 15, 16, 40,
                                 41, 42, 43};  // Two segments.
  at::NoGradGuard no_grad;
  auto served = (*compressor)->CompressSpan(span);
  ASSERT_OK(served);
  std::vector<at::Tensor> trained = EncodeCrossContexts(*trainables, at::kFloat, {span});
  ASSERT_EQ(trained.size(), 1u);
  ASSERT_EQ(trained[0].sizes(), served->sizes());
  EXPECT_EQ(served->size(0), 8);
  EXPECT_LT((trained[0] - *served).abs().max().item<float>(), 1e-4);

  // Training goes on from the package; its memory rows fix mem_size.
  PretrainOptions resume = CrossOptions();
  resume.init_adapter = package;
  auto more = CreatePretrainTask(resume, testing::TinyTrainOptions(out.Join("more"), 1));
  ASSERT_OK(more);
  EXPECT_NEAR(Metrics(**more)["ae_loss"], after, 1e-3);
  resume.mem_size = 8;
  resume.mem_size_given = true;
  EXPECT_FALSE(CreatePretrainTask(resume, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
}

TEST_F(CrossTrainTest, StartsFromTheFirstLayersOfAModelAndRefusesWhatDoesNotApply) {
  ScratchDir out;
  PretrainOptions options = CrossOptions();
  options.cross_options.encoder_init = dir_->Join("base");  // tiny-llama: 2 layers, hidden 64
  options.cross_options.encoder_layers = 1;
  options.cross_options.projector = "linear";
  auto task = CreatePretrainTask(options, testing::TinyTrainOptions(out.Join("a"), 1));
  ASSERT_OK(task);
  ASSERT_OK(RunTraining(**task, testing::TinyTrainOptions(out.Join("a"), 1), stderr));
  auto cross = LoadCrossEncoder(out.Join("a"));
  ASSERT_OK(cross);
  EXPECT_EQ(cross->config.encoder_hidden, 64);
  EXPECT_EQ(cross->config.projector, ProjectorKind::kLinear);
  auto encoder = LoadModelConfig(cross->encoder_model_dir());
  ASSERT_OK(encoder);
  EXPECT_EQ(encoder->num_layers, 1);

  PretrainOptions bad = options;
  bad.cross_options.encoder_layers = 3;  // More than the model has.
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
  bad = CrossOptions();
  bad.train_base = true;
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
  bad = CrossOptions();
  bad.slot_kind = "kv";
  bad.slot_kind_given = true;
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
  bad = CrossOptions();
  bad.cross_options.projector = "conv";
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
  bad = CrossOptions();
  bad.init_adapter = dir_->Join("base");  // Not a package.
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
}

// --slot-teacher: the cross encoder's slots are pulled towards an ICAE adapter's (the relative
// squared error is reported and falls when it is the objective); a teacher that cannot give as
// many slots per context, or the flag without a cross encoder, is refused.
TEST_F(CrossTrainTest, SlotTeacherPullsTheSlotsTowardsAnIcaeAdapters) {
  ScratchDir out;
  PretrainOptions icae = TinyOptions();  // An ICAE adapter of the same base and mem_size.
  auto teacher_task = CreatePretrainTask(icae, testing::TinyTrainOptions(out.Join("teacher"), 1));
  ASSERT_OK(teacher_task);
  ASSERT_OK(RunTraining(**teacher_task, testing::TinyTrainOptions(out.Join("teacher"), 1), stderr));

  TrainOptions train = testing::TinyTrainOptions(out.Join("cross"), 40);
  train.batch = 4;
  train.lr = 2e-2;
  PretrainOptions options = CrossOptions();
  options.lm_ratio = 0;
  options.slot_teacher = out.Join("teacher");
  options.slot_mse_weight = 20;
  // Samples of 4..24 tokens: one segment (the teacher compresses a batch of them at once) or two
  // (one context at a time).
  options.span_tokens = 24;
  options.min_span_tokens = 4;
  options.short_span_ratio = 0.8;
  auto task = CreatePretrainTask(options, train);
  ASSERT_OK(task);
  EXPECT_THAT((*task)->Recipe(), ::testing::HasSubstr("slot_mse_weight=20"));
  const double before = Metrics(**task)["slot_mse"];
  EXPECT_GT(before, 0);
  ASSERT_OK(RunTraining(**task, train, stderr));
  const double after = Metrics(**task)["slot_mse"];
  std::cout << "slot_mse " << before << " -> " << after << "\n";
  EXPECT_LT(after, 0.8 * before) << "slot_mse " << before << " -> " << after;

  PretrainOptions bad = options;
  bad.cross = false;  // ICAE itself has no teacher.
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
  bad = options;
  bad.slot_mse_weight = 0;
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
  bad = options;
  bad.mem_size = 8;  // The teacher makes 4 slots per segment.
  bad.mem_size_given = true;
  EXPECT_FALSE(CreatePretrainTask(bad, testing::TinyTrainOptions(out.Join("b"), 1)).ok());
}

}  // namespace
}  // namespace icae::train
