#include "tools/bench/bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/io/mapped_file.h"
#include "common/io/safetensors_writer.h"
#include "common/model/tensor_io.h"
#include "common/model/weights.h"

namespace icae::bench {

absl::StatusOr<std::unique_ptr<ChildServer>> ChildServer::Start(
    const std::string& binary, const std::vector<std::string>& args, const std::string& log_path) {
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> strings = {binary};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  std::unique_ptr<ChildServer> child(new ChildServer());
  child->pid_ = pid;
  child->stdout_fd_ = out_pipe[0];
  std::string buffer;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (child->address_.empty() || child->metrics_port_ == 0) {
    if (absl::Now() > deadline) return absl::DeadlineExceededError("server did not start");
    pollfd pfd = {child->stdout_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) continue;
    char chunk[512];
    const ssize_t n = ::read(child->stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(binary, " exited before listening; see ", log_path));
    }
    buffer.append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      absl::string_view line =
          absl::StripAsciiWhitespace(absl::string_view(buffer).substr(0, newline));
      if (absl::ConsumePrefix(&line, "listening on ")) child->address_ = std::string(line);
      if (absl::ConsumePrefix(&line, "metrics on ")) {
        absl::SimpleAtoi(line.substr(line.rfind(':') + 1), &child->metrics_port_);
      }
      buffer.erase(0, newline + 1);
    }
  }
  return child;
}

ChildServer::~ChildServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

int64_t ChildServer::MinorFaults() const {
  absl::StatusOr<std::string> stat = ReadFileToString(absl::StrCat("/proc/", pid_, "/stat"));
  if (!stat.ok()) return -1;
  // Fields after the command name (which may hold spaces, so start after its ')'): state is
  // field 3, minflt field 10.
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat->substr(paren + 2), ' ');
  int64_t minflt = -1;
  if (fields.size() > 7 && !absl::SimpleAtoi(fields[7], &minflt)) return -1;
  return minflt;
}

absl::StatusOr<std::string> ScrapeMetrics(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError("cannot connect to the metrics port");
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  ::send(fd, request.data(), request.size(), 0);
  std::string response;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

double SampleValue(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
    double value;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * values.size()));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace icae::bench
