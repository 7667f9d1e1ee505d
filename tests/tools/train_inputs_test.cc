// Bad training inputs get clear errors, and a failed or refused run never loses a finished
// checkpoint. Includes the real icae-train binary's exit codes and messages.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/train/finetune_data.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/lm_task.h"
#include "tools/train/train_checkpoint.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::icae::train::testing::ReadAll;
using ::icae::train::testing::TinyTrainOptions;
using ::testing::AllOf;
using ::testing::HasSubstr;

class TrainInputsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    testing::WriteCorpus(dir_->Join("train.txt"), 30, 1);
    testing::WriteCorpus(dir_->Join("valid.txt"), 4, 2);
    ASSERT_OK(testing::MakeTokenizedTinyBase(dir_->Join("base")));
  }
  static void TearDownTestSuite() { delete dir_; }

  static LmOptions TinyLm() { return testing::TinyLmOptions(dir_->path(), 4, 2); }
  static FinetuneOptions TinyFinetune(const std::string& train, const std::string& valid) {
    FinetuneOptions o;
    o.model = dir_->Join("base");
    o.train = train;
    o.valid = valid;
    o.lora_r = 4;
    o.lora_alpha = 8;
    o.mem_size = 4;
    o.rate = 4;
    return o;
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }

  static ScratchDir* dir_;
};
ScratchDir* TrainInputsTest::dir_ = nullptr;

TEST_F(TrainInputsTest, CorpusErrorsNameTheFileAndTheProblem) {
  ScratchDir scratch;
  TrainOptions train = TinyTrainOptions(scratch.Join("out"), 2);
  LmOptions lm = TinyLm();
  lm.train = scratch.Join("missing.txt");
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.txt")));
  Write(scratch.Join("empty.txt"), "\n  \n\n");
  lm.train = scratch.Join("empty.txt");
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("empty.txt"), HasSubstr("empty"))));
  lm.train = scratch.path();  // A directory is not a corpus.
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("directory")));
  Write(scratch.Join("short.txt"), "Too short.\n");
  lm.train = scratch.Join("short.txt");
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--train"), HasSubstr("tokens"))));
  Write(scratch.Join("bad-utf8.txt"), std::string("caf\xc3(\n", 6));
  lm.train = scratch.Join("bad-utf8.txt");
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad-utf8.txt")));
  lm = TinyLm();
  lm.tokenizer = scratch.Join("no-such.model");
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such.model")));
  lm = TinyLm();
  lm.hidden = 30;  // Not divisible by the 2 heads into an even head size.
  EXPECT_THAT(CreateLmTask(lm, train).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--heads")));
}

TEST_F(TrainInputsTest, FinetuneJsonlErrorsNameLineAndField) {
  ScratchDir scratch;
  auto tokenizer = Tokenizer::Load(dir_->Join("base/tokenizer.model"));
  ASSERT_OK(tokenizer);
  Write(scratch.Join("a.jsonl"),
        "{\"context\": \"The captain watched the sea.\", \"prompt\": \"Who?\", \"answer\": \"The "
        "captain.\"}\n\n{\"context\": \"x\", \"answer\": \"y\"}\n");
  EXPECT_THAT(ReadFinetuneExamples(scratch.Join("a.jsonl"), **tokenizer, 100).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("a.jsonl:3"), HasSubstr("\"prompt\""))));
  Write(scratch.Join("b.jsonl"), "{\"context\": \"x\", \"prompt\": 3, \"answer\": \"y\"}\n");
  EXPECT_THAT(ReadFinetuneExamples(scratch.Join("b.jsonl"), **tokenizer, 100).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("b.jsonl:1"), HasSubstr("must be a string"))));
  Write(scratch.Join("c.jsonl"), "not json\n");
  EXPECT_THAT(ReadFinetuneExamples(scratch.Join("c.jsonl"), **tokenizer, 100).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("c.jsonl:1")));
  Write(scratch.Join("d.jsonl"), "\n");
  EXPECT_THAT(ReadFinetuneExamples(scratch.Join("d.jsonl"), **tokenizer, 100).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no examples")));
  Write(scratch.Join("e.jsonl"), "{\"context\": \"\", \"prompt\": \"p\", \"answer\": \"y\"}\n");
  EXPECT_THAT(ReadFinetuneExamples(scratch.Join("e.jsonl"), **tokenizer, 100).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"context\" is empty")));
  EXPECT_THAT(ReadFinetuneExamples(scratch.Join("none.jsonl"), **tokenizer, 100).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("none.jsonl")));
}

TEST_F(TrainInputsTest, FinetuneTrainsOnJsonlAndLowersTheAnswerLoss) {
  ScratchDir scratch;
  std::string lines;
  const char* const kWho[] = {"captain", "sailor", "clerk", "whale"};
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&lines, "{\"context\": \"The ", kWho[i % 4], " watched the grey sea for ", i,
                    " days.\", \"prompt\": \"Who watched the sea?\", \"answer\": \"The ",
                    kWho[i % 4], ".\"}\n");
  }
  Write(scratch.Join("ft.jsonl"), lines);
  for (const char* tmpl : {"icae-v2-instruct", "icae-v1"}) {
    SCOPED_TRACE(tmpl);
    FinetuneOptions ft = TinyFinetune(scratch.Join("ft.jsonl"), scratch.Join("ft.jsonl"));
    ft.prompt_template = tmpl;
    TrainOptions train = TinyTrainOptions(scratch.Join(std::string("out-") + tmpl), 15);
    auto task = CreateFinetuneTask(ft, train);
    ASSERT_OK(task);
    double before;
    {
      at::NoGradGuard no_grad;
      auto m = (*task)->Validate();
      ASSERT_OK(m);
      before = (*m)[0].second;
    }
    auto result = RunTraining(**task, train, stderr);
    ASSERT_OK(result);
    EXPECT_LT(result->validation[0].second, before - 0.5);
    EXPECT_FALSE(
        ReadAll(scratch.Join(std::string("out-") + tmpl + "/adapter.safetensors")).empty());
  }
  FinetuneOptions ft = TinyFinetune(scratch.Join("ft.jsonl"), scratch.Join("ft.jsonl"));
  ft.prompt_template = "ae";
  EXPECT_THAT(CreateFinetuneTask(ft, TinyTrainOptions(scratch.Join("x"), 1)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--template")));
}

// A checkpoint survives a run that then fails on bad input, and one with other settings.
TEST_F(TrainInputsTest, FailedRunsKeepTheFinishedCheckpoint) {
  ScratchDir scratch;
  TrainOptions train = TinyTrainOptions(scratch.Join("out"), 6);
  train.stop_at = 3;
  auto task = CreateLmTask(TinyLm(), train);
  ASSERT_OK(task);
  ASSERT_OK(RunTraining(**task, train, stderr));
  const std::string ckpt = train.CheckpointDir();
  const std::string latest = ReadAll(ckpt + "/LATEST");
  ASSERT_EQ(latest, "step-0000003\n");
  const std::string tensors = ReadAll(ckpt + "/step-0000003/tensors.safetensors");
  ASSERT_FALSE(tensors.empty());

  // Bad input: refused before anything is written.
  LmOptions broken = TinyLm();
  Write(scratch.Join("empty.txt"), "");
  broken.valid = scratch.Join("empty.txt");
  train.stop_at = 0;
  EXPECT_THAT(CreateLmTask(broken, train).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  // Other settings: refused, naming both recipes.
  TrainOptions other = train;
  other.lr = 5e-3;
  auto task2 = CreateLmTask(TinyLm(), other);
  ASSERT_OK(task2);
  EXPECT_THAT(RunTraining(**task2, other, stderr).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("other settings")));
  EXPECT_EQ(ReadAll(ckpt + "/LATEST"), latest);
  EXPECT_EQ(ReadAll(ckpt + "/step-0000003/tensors.safetensors"), tensors);
  auto loaded = LoadTrainCheckpoint(ckpt);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->step, 3);

  // A damaged newest checkpoint is reported, not silently replaced by a fresh start.
  Write(ckpt + "/step-0000003/state.json", "{");
  auto task3 = CreateLmTask(TinyLm(), train);
  ASSERT_OK(task3);
  EXPECT_THAT(RunTraining(**task3, train, stderr).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("damaged")));
}

TEST_F(TrainInputsTest, BinaryReportsBadInputsOnOneLine) {
  ScratchDir scratch;
  const std::string bin = std::string(ICAE_BIN_DIR) + "/icae-train";
  auto run = [&](const std::string& args, int* code) {
    const std::string log = scratch.Join("log.txt");
    const int status = std::system((bin + " " + args + " > " + log + " 2>&1").c_str());
    *code = WEXITSTATUS(status);
    return ReadAll(log);
  };
  int code = 0;
  std::string out =
      run(absl::StrCat("lm --train ", scratch.Join("nope.txt"), " --valid ",
                       dir_->Join("valid.txt"), " --tokenizer ", dir_->Join("base/tokenizer.model"),
                       " --out ", scratch.Join("o")),
          &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, AllOf(HasSubstr("icae-train lm:"), HasSubstr("nope.txt")));
  out = run("lm --steps 0 --out x", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("--steps"));
  out = run("pretrain --model " + scratch.Join("no-model") + " --train a --valid b --out o", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("no-model"));
  out = run("bogus", &code);
  EXPECT_EQ(code, 2);
}

}  // namespace
}  // namespace icae::train
