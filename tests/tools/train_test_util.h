// Fixtures for the trainer tests: a tiny corpus, tiny-llama with a SentencePiece tokenizer
// trained at test time (the frozen base for ICAE tests), and small TrainOptions.
#ifndef ICAE_TESTS_TOOLS_TRAIN_TEST_UTIL_H_
#define ICAE_TESTS_TOOLS_TRAIN_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/lm_task.h"
#include "tools/train/train_options.h"

namespace icae::train::testing {

// Writes `docs` documents of varied English sentences (documents separated by empty lines).
void WriteCorpus(const std::string& path, int docs, int seed);

// A 384-piece BPE tokenizer.model trained on a generated corpus, written to `path`.
absl::Status TrainTokenizer(const std::string& dir, const std::string& path);

// tiny-llama (tests/testdata) copied into `dir` with a tokenizer.model beside it.
absl::Status MakeTokenizedTinyBase(const std::string& dir);

// Tiny ICAE pretraining on `base_dir`: LoRA r 4 alpha 8, mem_size 4, rate 4 (16-token
// segments), 4 validation samples.
PretrainOptions TinyPretrainOptions(const std::string& base_dir, const std::string& train,
                                    const std::string& valid);

// A tiny LM (hidden 32, 1 layer, 2 heads, 16-token windows) trained on `dir`'s train.txt and
// valid.txt with base/tokenizer.model.
LmOptions TinyLmOptions(const std::string& dir, int valid_windows, int kv_heads);

// Options for a few fast steps: batch 2, lr 1e-2, no warm-up, no GEMM timing, quiet logs.
TrainOptions TinyTrainOptions(const std::string& out, int steps);

// The serving encoder (Compressor: LoRA merged) on `base_dir` makes the slots (of either kind,
// same shape) the trainer's unmerged encoder makes for the adapter in `adapter_dir`.
void ExpectServedSlotsEqualTrained(const std::string& base_dir, const std::string& adapter_dir);

// Every byte of `path` ("" when unreadable).
std::string ReadAll(const std::string& path);

}  // namespace icae::train::testing

#endif  // ICAE_TESTS_TOOLS_TRAIN_TEST_UTIL_H_
