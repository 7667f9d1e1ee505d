// The trainer end to end on tiny models: the loss falls, resume is bit-identical, adapters
// round-trip through the loaders, the training layouts equal the serving ones.
#include <cmath>
#include <cstdio>
#include <memory>

#include "common/model/adapter.h"
#include "common/model/compressor.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"
#include "common/model/weights.h"
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

class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    testing::WriteCorpus(dir_->Join("train.txt"), 40, 1);
    testing::WriteCorpus(dir_->Join("valid.txt"), 6, 2);
    ASSERT_OK(testing::MakeTokenizedTinyBase(dir_->Join("base")));
  }
  static void TearDownTestSuite() { delete dir_; }

  static LmOptions TinyLm() {
    LmOptions o;
    o.train = dir_->Join("train.txt");
    o.valid = dir_->Join("valid.txt");
    o.tokenizer = dir_->Join("base/tokenizer.model");
    o.seq_len = 16;
    o.valid_windows = 8;
    o.hidden = 32;
    o.layers = 1;
    o.heads = 2;
    o.kv_heads = 1;
    o.max_positions = 64;
    return o;
  }
  static PretrainOptions TinyPretrain() {
    return testing::TinyPretrainOptions(dir_->Join("base"), dir_->Join("train.txt"),
                                        dir_->Join("valid.txt"));
  }
  // A run on a 3-document corpus it keeps seeing (the random frozen tiny-llama is a poor decoder,
  // so the check is that the adapter learns to autoencode its own training windows).
  static void SmallCorpusRun(const ScratchDir& out, int steps, TrainOptions* train,
                             PretrainOptions* options) {
    testing::WriteCorpus(out.Join("small.txt"), 3, 3);
    *train = TinyTrainOptions(out.Join("icae"), steps);
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

  static ScratchDir* dir_;
};
ScratchDir* TrainTest::dir_ = nullptr;

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
    if (factor > 0) EXPECT_EQ(*c, factor);
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
