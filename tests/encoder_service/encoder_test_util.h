// Shared pieces of the encoder service tests: a scratch copy of the golden tiny model and adapter
// (optionally with a SentencePiece tokenizer trained by Debian's spm_train), the golden slots,
// and helpers to read slot tensors.
#ifndef ICAE_TESTS_ENCODER_SERVICE_ENCODER_TEST_UTIL_H_
#define ICAE_TESTS_ENCODER_SERVICE_ENCODER_TEST_UTIL_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace icae::testing {

struct ModelCopy {
  std::string model_dir;  // tiny-llama files (+ tokenizer.model when asked)
  std::string adapter;    // tiny-icae adapter.safetensors (adapter_config.json beside it)
};

// Copies tests/testdata/tiny-llama and tiny-icae under `dir`. With `tokenizer`, trains a
// 384-piece Llama-style SentencePiece model (bpe, byte fallback, unk 0, bos 1, eos 2) into
// model_dir/tokenizer.model. With `config_fifo`, model_dir/config.json is a named pipe instead
// of a file (the caller feeds it with a FifoFeeder).
absl::StatusOr<ModelCopy> MakeModelCopy(const std::string& dir, bool tokenizer,
                                        bool config_fifo = false);

// Holds a server in its loading phase: `path` is a named pipe the server blocks opening (for
// reading) until the feeder starts. The feeder then swaps a regular file with `contents` in at
// `path` (later opens read that file) and writes `contents` into the pipe for the reader already
// waiting on it. Runs on a thread; the destructor unblocks and joins it.
class FifoFeeder {
 public:
  FifoFeeder(std::string path, std::string contents);
  ~FifoFeeder();
  FifoFeeder(const FifoFeeder&) = delete;
  FifoFeeder& operator=(const FifoFeeder&) = delete;
  bool served() const { return served_.load(); }

 private:
  const std::string path_;
  const std::string contents_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> served_{false};
  std::thread thread_;
};

// The golden ICAE inputs and slots (tests/testdata/tiny-icae/expected.safetensors).
struct GoldenSlots {
  std::vector<int> context_ids;    // 16 ids: one segment
  std::vector<float> slots;        // [4, 64]
  std::vector<int> context40_ids;  // 40 ids: three segments
  std::vector<float> slots40;      // [12, 64]
};
absl::StatusOr<GoldenSlots> ReadGolden();

// spm_encode's ids for `text` with `model` (no BOS).
absl::StatusOr<std::vector<int>> SpmEncode(const std::string& model, const std::string& text);

// Little-endian float32 bytes as floats; bfloat16 / float16 bytes widened to float.
std::vector<float> FloatsFromF32(const std::string& bytes);
std::vector<float> FloatsFromBF16(const std::string& bytes);
std::vector<float> FloatsFromF16(const std::string& bytes);
// Round-to-nearest-even float32 -> bfloat16 / float16, as bytes (the reference for the wire).
std::string ToBF16Bytes(const std::vector<float>& values);
std::string ToF16Bytes(const std::vector<float>& values);

// Max |a - b|; infinity when sizes differ.
double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b);

// Token ids 3..vocab-1 from a seeded generator.
std::vector<int> RandomIds(int count, int vocab, unsigned seed);

}  // namespace icae::testing

#endif  // ICAE_TESTS_ENCODER_SERVICE_ENCODER_TEST_UTIL_H_
