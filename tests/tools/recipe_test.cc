// The trainer's recipe features on tiny models: LoRA on all seven projections, co-training the
// base (and resuming it), a rate curriculum over one set of memory rows.
#include <cmath>
#include <cstdio>
#include <memory>

#include "common/model/adapter.h"
#include "common/model/compressor.h"
#include "common/model/transformer.h"
#include "common/model/weights.h"
#include "tests/tools/train_fixture.h"
#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_layout.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::train::testing::ReadAll;
using ::icae::train::testing::TinyTrainOptions;

// LoRA on all seven projections with the uniform memory layout: trains, exports in PEFT names,
// and the serving encoder (which merges every target and reads the layout from the adapter)
// makes the trainer's slots; segments of unequal length batch as alone.
TEST_F(TrainTest, AllProjectionLoraTrainsAndServes) {
  ScratchDir out;
  TrainOptions train = TinyTrainOptions(out.Join("icae"), 6);
  PretrainOptions options = TinyPretrain();
  options.lora_targets = "all";
  options.memory_positions = "uniform";
  options.ae_only_steps = 3;
  auto task = MustCreate(CreatePretrainTask(options, train));
  ASSERT_NE(task, nullptr);
  ASSERT_OK(RunTraining(*task, train, stderr));
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  auto adapter = LoadAdapter(out.Join("icae"), *config, /*with_lora=*/true);
  ASSERT_OK(adapter);
  ASSERT_EQ(adapter->config.target_modules.size(), 7u);
  EXPECT_EQ(adapter->config.memory_positions, MemoryPositions::kUniform);
  for (const char* m :
       {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    SCOPED_TRACE(m);
    ASSERT_EQ(adapter->lora[0].count(m), 1u);
    EXPECT_GT(adapter->lora[0][m].b.abs().max().item<float>(), 0) << "B was trained";
  }
  EXPECT_EQ(task->Parameters().size(), 14u * config->num_layers + 1);

  auto compressor = Compressor::Load(dir_->Join("base"), out.Join("icae"), Runtime{});
  ASSERT_OK(compressor);
  auto base = Transformer::Load(dir_->Join("base"), Runtime{});
  ASSERT_OK(base);
  auto trainables = IcaeFromAdapter(*adapter, *config);
  ASSERT_OK(trainables);
  const std::vector<int> a = {5, 17, 42, 99, 3, 250, 8, 61, 77, 300, 12, 13};
  const std::vector<int> b = {7, 8, 9, 10, 11};
  at::NoGradGuard no_grad;
  auto served = (*compressor)->CompressSegments({a, b});
  ASSERT_OK(served);
  at::Tensor trained = EncodeSegments(**base, *trainables, {a, b});
  EXPECT_LT((trained - *served).abs().max().item<float>(), 1e-4);
  at::Tensor alone = EncodeSegments(**base, *trainables, {b});
  EXPECT_LT((trained[1] - alone[0]).abs().max().item<float>(), 1e-4);
  // The trainer refuses a target the architecture does not have.
  options.lora_targets = "q_proj,w_proj";
  EXPECT_FALSE(CreatePretrainTask(options, train).ok());
}

// Co-training a base of our own: the base's weights train with the adapter (autoencoding,
// continuation and plain text LM samples), the export holds both, and the serving encoder on the
// exported base makes the slots the trainer makes. The run also resumes bit for bit.
TEST_F(TrainTest, CoTrainingTrainsTheBaseAndExportsBoth) {
  ScratchDir out;
  TrainOptions train;
  PretrainOptions options;
  SmallCorpusRun(out, 30, &train, &options);
  options.lm_ratio = 0.2;
  options.train_base = true;
  options.text_lm_ratio = 0.3;
  options.base_lr_scale = 0.5;
  auto task = MustCreate(CreatePretrainTask(options, train));
  ASSERT_NE(task, nullptr);
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  const size_t adapter_params = 4u * config->num_layers + 1;
  const std::vector<at::Tensor> params = task->Parameters();
  ASSERT_GT(params.size(), adapter_params) << "the base's weights are trainable";
  const std::vector<double> scales = task->LearningRateScales();
  ASSERT_EQ(scales.size(), params.size());
  EXPECT_DOUBLE_EQ(scales.back(), 0.5);
  std::vector<at::Tensor> before;
  for (const at::Tensor& p : params) before.push_back(p.detach().clone());
  double ae_before, text_before;
  {
    at::NoGradGuard no_grad;
    auto m = task->Validate();
    ASSERT_OK(m);
    ASSERT_EQ((*m)[1].first, "ae_loss");
    ASSERT_EQ(m->back().first, "text_ppl");
    ae_before = (*m)[1].second;
    text_before = m->back().second;
  }
  auto result = RunTraining(*task, train, stderr);
  ASSERT_OK(result);
  EXPECT_LT(result->validation[1].second, ae_before - 0.2);
  EXPECT_LT(result->validation.back().second, text_before) << "the base learnt the text too";
  EXPECT_FALSE(at::equal(params.back().detach(), before.back())) << "a base weight moved";

  // The exported base is a loadable model with the tokenizer, different from the starting one,
  // and the adapter serves on it exactly as trained.
  auto trained_base = Transformer::Load(out.Join("icae/base"), Runtime{});
  ASSERT_OK(trained_base);
  auto start_base = Transformer::Load(dir_->Join("base"), Runtime{});
  ASSERT_OK(start_base);
  EXPECT_FALSE(at::equal((*trained_base)->weights().layers[0].w_down,
                         (*start_base)->weights().layers[0].w_down));
  EXPECT_EQ(ReadAll(out.Join("icae/base/tokenizer.model")),
            ReadAll(dir_->Join("base/tokenizer.model")));
  testing::ExpectServedSlotsEqualTrained(out.Join("icae/base"), out.Join("icae"));

  // Text LM samples without a trainable base would train nothing: refused.
  options.train_base = false;
  EXPECT_FALSE(CreatePretrainTask(options, train).ok());
}

TEST_F(TrainTest, CoTrainingResumesBitIdentically) {
  ScratchDir out;
  PretrainOptions options = TinyPretrain();
  options.train_base = true;
  options.text_lm_ratio = 0.3;
  TrainOptions straight = TinyTrainOptions(out.Join("straight"), 6);
  auto a = MustCreate(CreatePretrainTask(options, straight));
  ASSERT_NE(a, nullptr);
  ASSERT_OK(RunTraining(*a, straight, stderr));
  TrainOptions split = straight;
  split.out = out.Join("split");
  split.checkpoint_every = 2;
  split.stop_at = 3;
  auto b = MustCreate(CreatePretrainTask(options, split));
  ASSERT_NE(b, nullptr);
  ASSERT_OK(RunTraining(*b, split, stderr));
  split.stop_at = 0;
  auto c = MustCreate(CreatePretrainTask(options, split));
  ASSERT_NE(c, nullptr);
  ASSERT_OK(RunTraining(*c, split, stderr));
  const auto pa = a->Parameters(), pc = c->Parameters();
  ASSERT_EQ(pa.size(), pc.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pc[i])) << "tensor " << i;
  EXPECT_EQ(ReadAll(out.Join("straight/base/model.safetensors")),
            ReadAll(out.Join("split/base/model.safetensors")));
}

// One set of memory rows trains at a new rate (the rate curriculum): --rate given with
// --init-adapter wins, the adapter's rate stays otherwise, and another --mem-size is refused.
TEST_F(TrainTest, InitAdapterTakesANewRateButNotANewMemSize) {
  ScratchDir out;
  TrainOptions train = TinyTrainOptions(out.Join("r1"), 2);
  PretrainOptions options = TinyPretrain();
  options.rate = 1;
  ASSERT_OK(RunTraining(*MustCreate(CreatePretrainTask(options, train)), train, stderr));
  auto config = LoadModelConfig(dir_->Join("base"));
  ASSERT_OK(config);
  for (const bool given : {false, true}) {
    SCOPED_TRACE(given ? "--rate 2" : "no --rate");
    PretrainOptions next = TinyPretrain();
    next.init_adapter = out.Join("r1");
    next.rate = 2;
    next.rate_given = given;
    TrainOptions t = TinyTrainOptions(out.Join(given ? "r2" : "kept"), 2);
    ASSERT_OK(RunTraining(*MustCreate(CreatePretrainTask(next, t)), t, stderr));
    auto adapter = LoadAdapter(t.out, *config, /*with_lora=*/false);
    ASSERT_OK(adapter);
    EXPECT_EQ(adapter->config.compression_rate, given ? 2 : 1);
  }
  PretrainOptions wrong = TinyPretrain();
  wrong.init_adapter = out.Join("r1");
  wrong.mem_size = 8;
  wrong.mem_size_given = true;
  auto refused = CreatePretrainTask(wrong, TinyTrainOptions(out.Join("bad"), 2));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--mem-size 8"), std::string::npos) << refused.status();
}

}  // namespace
}  // namespace icae::train
