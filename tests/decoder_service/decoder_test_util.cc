#include "tests/decoder_service/decoder_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/model/tensor_io.h"

namespace icae::testing {

at::Tensor IcaeFixture(const std::string& name) {
  static const auto* tensors = [] {
    auto read = ReadAllTensors(TestData("tiny-icae/expected.safetensors"));
    return new std::vector<std::pair<std::string, at::Tensor>>(
        read.ok() ? *std::move(read) : std::vector<std::pair<std::string, at::Tensor>>{});
  }();
  for (const auto& [n, t] : *tensors) {
    if (n == name) return t;
  }
  return at::Tensor();
}

std::vector<int> ToIds(const at::Tensor& t) {
  at::Tensor flat = t.to(at::kLong).contiguous().view({-1});
  return std::vector<int>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

absl::Status MakeTokenizedTinyLlama(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (const auto& entry : std::filesystem::directory_iterator(TinyLlamaDir())) {
    std::filesystem::copy(entry.path(), dir + "/" + entry.path().filename().string(),
                          std::filesystem::copy_options::overwrite_existing);
  }
  // Enough varied English for 384 pieces (256 of them bytes).
  std::ofstream text(dir + "/train.txt");
  const char* const kLines[] = {
      "The quick brown fox jumps over the lazy dog near the river bank.",
      "Memory slots compress a long context into a few dense vectors.",
      "A decoder generates the answer from the slots and the question.",
      "Retrieval augmented generation sends documents to the encoder first.",
      "Streaming returns tokens as soon as they are produced by the model.",
      "What is the capital of France? Paris is the capital of France.",
      "Numbers like 12, 345 and 6789 appear in reports and tables.",
      "[INST] Summarize the document in one sentence. [/INST]",
  };
  for (int i = 0; i < 40; ++i) {
    for (const char* line : kLines) text << line << "\n";
  }
  text.close();
  const std::string command =
      absl::StrCat("spm_train --input=", dir, "/train.txt --model_prefix=", dir,
                   "/tokenizer --vocab_size=384 --model_type=bpe --byte_fallback=true "
                   "--unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --character_coverage=1.0 "
                   "--user_defined_symbols=[INST],[/INST] > ",
                   dir, "/spm_train.log 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("spm_train failed: ", command, " (see ", dir, "/spm_train.log)"));
  }
  std::filesystem::remove(dir + "/tokenizer.vocab");
  std::filesystem::remove(dir + "/train.txt");
  return absl::OkStatus();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

absl::Status ServerProcess::Start(const std::string& binary, const std::vector<std::string>& args,
                                  const std::string& log_path, absl::Duration timeout) {
  log_path_ = log_path;
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  bool wants_metrics = false;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--metrics_listen") wants_metrics = !args[i + 1].empty();
  }
  pid_ = ::fork();
  if (pid_ < 0) return absl::InternalError("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // Never outlive the test or benchmark.
    ::dup2(pipe_fds[1], 1);
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) ::dup2(log, 2);
    ::close(pipe_fds[0]);
    std::vector<char*> argv;
    for (std::string& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  stdout_fd_ = pipe_fds[0];
  const absl::Time deadline = absl::Now() + timeout;
  std::string buffer;
  while (address_.empty() || (wants_metrics && metrics_port_ == 0)) {
    const int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) return absl::DeadlineExceededError("server start: " + Log());
    pollfd pfd{stdout_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, wait_ms) <= 0) continue;
    char chunk[512];
    const ssize_t n = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) return absl::InternalError("server exited during start: " + Log());
    buffer.append(chunk, n);
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      if (absl::StartsWith(line, "listening on ")) {
        const std::string port = line.substr(line.rfind(':') + 1);
        address_ = "127.0.0.1:" + port;
      } else if (absl::StartsWith(line, "metrics on ")) {
        (void)absl::SimpleAtoi(line.substr(line.rfind(':') + 1), &metrics_port_);
      }
    }
  }
  return absl::OkStatus();
}

void ServerProcess::Signal(int signo) {
  if (pid_ > 0) ::kill(pid_, signo);
}

absl::StatusOr<int> ServerProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() > deadline) return absl::DeadlineExceededError("server did not exit");
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::FailedPreconditionError("not running");
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace icae::testing
