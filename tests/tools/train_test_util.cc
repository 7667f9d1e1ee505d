#include "tests/tools/train_test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/model/adapter.h"
#include "common/model/compressor.h"
#include "common/model/transformer.h"
#include "tests/util/test_util.h"
#include "tools/train/icae_layout.h"

namespace icae::train::testing {
namespace {

const char* const kSubjects[] = {"The captain",  "A small boat", "The old whale", "Our nation",
                                 "The congress", "Every sailor", "The harbour",   "A young clerk"};
const char* const kVerbs[] = {"watched", "carried", "followed", "praised",
                              "crossed", "feared",  "measured", "remembered"};
const char* const kObjects[] = {"the grey sea",   "the long voyage",  "the new law",
                                "the cold wind",  "the silver coins", "the distant shore",
                                "the quiet town", "the heavy rope"};

}  // namespace

void WriteCorpus(const std::string& path, int docs, int seed) {
  std::ofstream out(path);
  unsigned state = static_cast<unsigned>(seed) * 2654435761u + 1;
  auto next = [&]() {
    state = state * 1103515245u + 12345u;
    return (state >> 16) & 7;
  };
  for (int d = 0; d < docs; ++d) {
    for (int p = 0; p < 3; ++p) {
      for (int s = 0; s < 4; ++s) {
        out << kSubjects[next()] << " " << kVerbs[next()] << " " << kObjects[next()] << ". ";
      }
      out << "\n";
    }
    out << "\n";
  }
}

absl::Status TrainTokenizer(const std::string& dir, const std::string& path) {
  const std::string text = dir + "/spm_input.txt";
  WriteCorpus(text, 60, 99);
  {
    std::ofstream extra(text, std::ios::app);
    extra << "[INST] Summarize the document in one sentence. [/INST]\n"
          << "What did the captain watch? He watched the sea, 12 times in 345 days.\n";
  }
  const std::string prefix = dir + "/spm";
  const std::string command = absl::StrCat(
      "spm_train --input=", text, " --model_prefix=", prefix,
      " --vocab_size=384 --model_type=bpe --byte_fallback=true --character_coverage=1.0"
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1 --minloglevel=2 > ",
      dir, "/spm_train.log 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("spm_train failed: ", command));
  }
  std::filesystem::copy_file(prefix + ".model", path,
                             std::filesystem::copy_options::overwrite_existing);
  return absl::OkStatus();
}

absl::Status MakeTokenizedTinyBase(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (const char* name : {"config.json", "model.safetensors", "generation_config.json"}) {
    std::filesystem::copy_file(std::string(ICAE_TESTDATA) + "/tiny-llama/" + name, dir + "/" + name,
                               std::filesystem::copy_options::overwrite_existing);
  }
  return TrainTokenizer(dir, dir + "/tokenizer.model");
}

LmOptions TinyLmOptions(const std::string& dir, int valid_windows, int kv_heads) {
  LmOptions o;
  o.train = dir + "/train.txt";
  o.valid = dir + "/valid.txt";
  o.tokenizer = dir + "/base/tokenizer.model";
  o.seq_len = 16;
  o.valid_windows = valid_windows;
  o.hidden = 32;
  o.layers = 1;
  o.heads = 2;
  o.kv_heads = kv_heads;
  o.max_positions = 64;
  return o;
}

PretrainOptions TinyPretrainOptions(const std::string& base_dir, const std::string& train,
                                    const std::string& valid) {
  PretrainOptions o;
  o.model = base_dir;
  o.train = train;
  o.valid = valid;
  o.lora_r = 4;
  o.lora_alpha = 8;
  o.mem_size = 4;
  o.rate = 4;
  o.valid_samples = 4;
  return o;
}

TrainOptions TinyTrainOptions(const std::string& out, int steps) {
  TrainOptions o;
  o.out = out;
  o.steps = steps;
  o.batch = 2;
  o.lr = 1e-2;
  o.warmup = 0;
  o.threads = 2;
  o.checkpoint_every = 0;
  o.eval_every = 0;
  o.log_every = 1000;
  o.gemm_baseline = false;
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void ExpectServedSlotsEqualTrained(const std::string& base_dir, const std::string& adapter_dir) {
  auto config = LoadModelConfig(base_dir);
  ASSERT_OK(config);
  auto adapter = LoadAdapter(adapter_dir, *config, /*with_lora=*/true);
  ASSERT_OK(adapter);
  auto compressor = Compressor::Load(base_dir, adapter_dir, Runtime{});
  ASSERT_OK(compressor);
  auto base = Transformer::Load(base_dir, Runtime{});
  ASSERT_OK(base);
  auto trainables = IcaeFromAdapter(*adapter, *config);
  ASSERT_OK(trainables);
  EXPECT_EQ(trainables->config.slot_kind, adapter->config.slot_kind);
  const std::vector<int> segment = {5,  17,  42, 99, 3,  250, 8,  61,
                                    77, 300, 12, 13, 14, 15,  16, 40};
  at::NoGradGuard no_grad;
  auto served = (*compressor)->CompressSegments({segment});
  ASSERT_OK(served);
  at::Tensor trained = EncodeSegments(**base, *trainables, {segment});
  ASSERT_EQ(trained.sizes(), served->sizes());
  EXPECT_LT((trained - *served).abs().max().item<float>(), 1e-4);
}

}  // namespace icae::train::testing
