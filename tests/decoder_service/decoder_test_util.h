// Helpers for the decoder service tests: golden fixtures, a tiny-llama copy with a SentencePiece
// tokenizer trained at test time (the golden models ship none), and a real server process.
#ifndef ICAE_TESTS_DECODER_SERVICE_DECODER_TEST_UTIL_H_
#define ICAE_TESTS_DECODER_SERVICE_DECODER_TEST_UTIL_H_

#include <ATen/ATen.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace icae::testing {

inline std::string TestData(const std::string& rel) {
  return std::string(ICAE_TESTDATA) + "/" + rel;
}
inline std::string TinyLlamaDir() { return TestData("tiny-llama"); }
inline std::string TinyAdapter() { return TestData("tiny-icae/adapter.safetensors"); }

// A tensor of tiny-icae/expected.safetensors (CPU, stored dtype).
at::Tensor IcaeFixture(const std::string& name);
std::vector<int> ToIds(const at::Tensor& t);

// Copies tiny-llama into `dir` and trains `dir`/tokenizer.model with spm_train (BPE, vocab 384 as
// the model's, byte fallback, unk 0, bos 1, eos 2).
absl::Status MakeTokenizedTinyLlama(const std::string& dir);

// A server binary run as a child process. Start waits for its "listening on" line (and
// "metrics on" when it has one). stderr goes to a file shown on failure.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess();  // SIGKILL when still running.
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  absl::Status Start(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& log_path, absl::Duration timeout = absl::Seconds(60));
  // "127.0.0.1:PORT" of the gRPC and metrics endpoints.
  const std::string& address() const { return address_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }

  void Signal(int signo);
  // Waits for the exit; the exit code, or 128 + signal. DeadlineExceeded after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  int metrics_port_ = 0;
  std::string log_path_;
};

}  // namespace icae::testing

#endif  // ICAE_TESTS_DECODER_SERVICE_DECODER_TEST_UTIL_H_
