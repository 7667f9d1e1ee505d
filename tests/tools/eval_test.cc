// icae eval: corpus BLEU against hand-computed values, and the real binary on a tiny model with
// an adapter the trainer just wrote.
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/tools/train_test_util.h"
#include "tests/util/test_util.h"
#include "tools/cli/eval_bleu.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/trainer.h"

namespace icae {
namespace {

using ::icae::cli::CorpusBleu;
using ::icae::testing::ScratchDir;

TEST(CorpusBleuTest, PerfectAndDisjointCorpora) {
  const std::vector<std::vector<int>> refs = {{1, 2, 3, 4, 5, 6}, {7, 8, 9, 10}};
  EXPECT_DOUBLE_EQ(CorpusBleu(refs, refs), 1.0);
  EXPECT_DOUBLE_EQ(CorpusBleu({{11, 12, 13, 14, 15, 16}, {17, 18, 19, 20}}, refs), 0.0);
  EXPECT_DOUBLE_EQ(CorpusBleu({{}, {}}, refs), 0.0);
}

TEST(CorpusBleuTest, MatchesAHandComputedScore) {
  // Hypothesis 1 2 3 4 9 6 against 1 2 3 4 5 6: 1-grams 5/6, 2-grams 3/5, 3-grams 2/4,
  // 4-grams 1/3; equal length, so no brevity penalty.
  const double expected = std::pow(5.0 / 6 * 3.0 / 5 * 2.0 / 4 * 1.0 / 3, 0.25);
  EXPECT_NEAR(CorpusBleu({{1, 2, 3, 4, 9, 6}}, {{1, 2, 3, 4, 5, 6}}), expected, 1e-12);
  // Clipping: a repeated token counts at most as often as in the reference.
  const double clipped = CorpusBleu({{1, 1, 1, 1, 1}}, {{1, 2, 3, 4, 5}});
  EXPECT_DOUBLE_EQ(clipped, 0.0);
  // Brevity: the first 4 of 6 tokens, every n-gram right, penalty exp(1 - 6/4).
  EXPECT_NEAR(CorpusBleu({{1, 2, 3, 4}}, {{1, 2, 3, 4, 5, 6}}), std::exp(1.0 - 6.0 / 4), 1e-12);
}

// A few pretraining steps on tiny-llama: an adapter of `kind` in <dir>/adapter.
void TrainTinyAdapter(const ScratchDir& dir, const std::string& kind) {
  ASSERT_OK(train::testing::MakeTokenizedTinyBase(dir.Join("base")));
  train::testing::WriteCorpus(dir.Join("train.txt"), 20, 1);
  train::testing::WriteCorpus(dir.Join("test.txt"), 6, 5);
  train::PretrainOptions o;
  o.slot_kind = kind;
  o.model = dir.Join("base");
  o.train = dir.Join("train.txt");
  o.valid = dir.Join("test.txt");
  o.lora_r = 4;
  o.lora_alpha = 8;
  o.mem_size = 4;
  o.rate = 4;
  o.valid_samples = 2;
  train::TrainOptions t = train::testing::TinyTrainOptions(dir.Join("adapter"), 3);
  auto task = train::CreatePretrainTask(o, t);
  ASSERT_OK(task);
  ASSERT_OK(train::RunTraining(**task, t, stderr));
}

// Runs `icae eval` on <dir>/adapter over `max_spans` spans of <dir>/test.txt: the table in
// <dir>/table.txt, the JSON in <dir>/eval.json, stderr in <dir>/err.txt. Returns the exit status.
int RunEval(const ScratchDir& dir, int max_spans) {
  const std::string command = absl::StrCat(
      ICAE_BIN_DIR, "/icae eval --model ", dir.Join("base"), " --adapter ", dir.Join("adapter"),
      " --file ", dir.Join("test.txt"), " --max-spans ", max_spans, " --threads 2 --json ",
      dir.Join("eval.json"), " > ", dir.Join("table.txt"), " 2> ", dir.Join("err.txt"));
  return std::system(command.c_str());
}

TEST(EvalBinaryTest, WritesTheTableAndJson) {
  ScratchDir dir;
  TrainTinyAdapter(dir, "embedding");
  ASSERT_EQ(RunEval(dir, 5), 0) << train::testing::ReadAll(dir.Join("err.txt"));
  const std::string table = train::testing::ReadAll(dir.Join("table.txt"));
  EXPECT_THAT(table, ::testing::HasSubstr("autoencoding BLEU-4"));
  EXPECT_THAT(table, ::testing::HasSubstr("5 x 16 tokens (4 slots each)"));
  nlohmann::json j = nlohmann::json::parse(train::testing::ReadAll(dir.Join("eval.json")));
  EXPECT_EQ(j["spans"], 5);
  for (const char* key : {"bleu4", "exact_match"}) {
    ASSERT_TRUE(j[key].is_number()) << key;
    EXPECT_GE(j[key].get<double>(), 0.0);
    EXPECT_LE(j[key].get<double>(), 1.0);
  }
  for (const char* key : {"ppl_text", "ppl_slots", "ppl_none"}) {
    ASSERT_TRUE(j[key].is_number()) << key;
    EXPECT_GT(j[key].get<double>(), 1.0);
    EXPECT_LT(j[key].get<double>(), 1e6);
  }
  // Position bands 1..1, 2..5, 6..16 tile the 16-token continuation, and their position-weighted
  // log-perplexities average to the whole continuation's.
  const nlohmann::json& bands = j["ppl_by_position"];
  ASSERT_EQ(bands.size(), 3u);
  int next = 1;
  for (const char* key : {"ppl_text", "ppl_slots", "ppl_none"}) {
    double weighted = 0;
    next = 1;
    for (const nlohmann::json& b : bands) {
      EXPECT_EQ(b["first"].get<int>(), next);
      next = b["last"].get<int>() + 1;
      weighted += (b["last"].get<int>() - b["first"].get<int>() + 1) * std::log(b[key].get<double>());
    }
    EXPECT_NEAR(weighted / 16, std::log(j[key].get<double>()), 1e-9) << key;
  }
  EXPECT_EQ(next, 17);
  EXPECT_THAT(table, ::testing::HasSubstr("continuation ppl by position"));

  // A text too short for one span and its continuation is a usage error.
  std::ofstream(dir.Join("short.txt")) << "The captain.\n";
  const std::string short_run =
      absl::StrCat(ICAE_BIN_DIR, "/icae eval --model ", dir.Join("base"), " --adapter ",
                   dir.Join("adapter"), " --file ", dir.Join("short.txt"), " > /dev/null 2>&1");
  EXPECT_EQ(WEXITSTATUS(std::system(short_run.c_str())), 2);
}

// KV slots predict no first continuation token: every condition is scored from the second one,
// and the table says so, with the bytes a KV encoder sends per 128 tokens.
TEST(EvalBinaryTest, KvSlotsAreScoredFromTheSecondContinuationToken) {
  ScratchDir dir;
  TrainTinyAdapter(dir, "kv");
  ASSERT_EQ(RunEval(dir, 3), 0) << train::testing::ReadAll(dir.Join("err.txt"));
  const std::string table = train::testing::ReadAll(dir.Join("table.txt"));
  // [2 layers, 2, 2 kv heads, 4 slots, 16] float32 per 16 tokens = 2048 bytes: 16384 per 128.
  EXPECT_THAT(table, ::testing::HasSubstr("kv, 16384 bytes per 128 tokens (float32)"));
  EXPECT_THAT(table, ::testing::HasSubstr("from continuation token 2"));
  nlohmann::json j = nlohmann::json::parse(train::testing::ReadAll(dir.Join("eval.json")));
  EXPECT_EQ(j["slot_kind"], "kv");
  EXPECT_EQ(j["first_scored_token"], 2);
  const nlohmann::json& bands = j["ppl_by_position"];
  ASSERT_FALSE(bands.empty());
  EXPECT_EQ(bands[0]["first"].get<int>(), 2);
  double weighted = 0;
  for (const nlohmann::json& b : bands) {
    weighted += (b["last"].get<int>() - b["first"].get<int>() + 1) *
                std::log(b["ppl_slots"].get<double>());
  }
  EXPECT_EQ(bands.back()["last"].get<int>(), 16);
  EXPECT_NEAR(weighted / 15, std::log(j["ppl_slots"].get<double>()), 1e-9);
}

}  // namespace
}  // namespace icae
