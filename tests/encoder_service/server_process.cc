#include "tests/encoder_service/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace icae::testing {
namespace {

std::string Tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

}  // namespace

std::string BinDir() {
#ifdef ICAE_BIN_DIR
  return ICAE_BIN_DIR;
#else
  return "build/bin";
#endif
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::vector<std::string>& args, const std::string& log_path,
    bool expect_metrics, absl::Duration timeout) {
  if (::access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(binary, " is not an executable"));
  }
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_fd >= 0) ::dup2(log_fd, STDERR_FILENO);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  std::unique_ptr<ServerProcess> process(new ServerProcess());
  process->pid_ = pid;
  process->stdout_fd_ = out_pipe[0];
  process->log_path_ = log_path;

  const absl::Time deadline = absl::Now() + timeout;
  std::string buffer;
  bool have_listen = false, have_metrics = !expect_metrics;
  while (!(have_listen && have_metrics)) {
    const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (wait_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          binary, " printed no listening line in time; log:\n", Tail(process->Log(), 4000)));
    }
    pollfd pfd = {process->stdout_fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(wait_ms, 200)));
    if (ready < 0 && errno != EINTR) return absl::InternalError("poll failed");
    if (ready <= 0) continue;
    char chunk[1024];
    const ssize_t n = ::read(process->stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) {
      absl::StatusOr<int> code = process->WaitExit(absl::Seconds(10));
      return absl::FailedPreconditionError(
          absl::StrCat(binary, " exited (", code.ok() ? absl::StrCat(*code) : "?",
                       ") before listening; log:\n", Tail(process->Log(), 4000)));
    }
    buffer.append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      absl::string_view line =
          absl::StripAsciiWhitespace(absl::string_view(buffer).substr(0, newline));
      if (absl::ConsumePrefix(&line, "listening on ")) {
        process->address_ = std::string(line);
        have_listen = true;
      } else if (absl::ConsumePrefix(&line, "metrics on ")) {
        const size_t colon = line.rfind(':');
        if (colon != absl::string_view::npos) {
          have_metrics = absl::SimpleAtoi(line.substr(colon + 1), &process->metrics_port_);
        }
      }
      buffer.erase(0, newline + 1);
    }
  }
  return process;
}

ServerProcess::~ServerProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

void ServerProcess::Signal(int signo) const {
  if (!exited_ && pid_ > 0) ::kill(pid_, signo);
}

absl::StatusOr<int> ServerProcess::WaitExit(absl::Duration timeout) {
  if (exited_) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("process ", pid_, " still running"));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace icae::testing
