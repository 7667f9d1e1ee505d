// A server binary run as a child process for integration tests: started with arguments, its
// stdout read until it printed "listening on HOST:PORT" (and "metrics on HOST:PORT"), its stderr
// kept in a file for failure messages. Killed (SIGKILL) on destruction if still running.
#ifndef ICAE_TESTS_ENCODER_SERVICE_SERVER_PROCESS_H_
#define ICAE_TESTS_ENCODER_SERVICE_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace icae::testing {

class ServerProcess {
 public:
  // Runs `binary args...`; `log_path` receives its stderr. Waits up to `timeout` for the
  // "listening on" line (and "metrics on" when `expect_metrics`). Fails with the log's tail when
  // the process exits first.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& args, const std::string& log_path,
      bool expect_metrics, absl::Duration timeout = absl::Seconds(60));
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // "127.0.0.1:PORT" as printed; the metrics HTTP port (0 when not expected).
  const std::string& address() const { return address_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }

  void Signal(int signo) const;
  // The exit code (or 128 + signal when killed by one); DeadlineExceeded after `timeout`.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);
  // The stderr log so far.
  std::string Log() const;

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  bool exited_ = false;
  int exit_code_ = 0;
  std::string log_path_;
  std::string address_;
  int metrics_port_ = 0;
};

// The directory holding the binaries of this build (ICAE_BIN_DIR).
std::string BinDir();

}  // namespace icae::testing

#endif  // ICAE_TESTS_ENCODER_SERVICE_SERVER_PROCESS_H_
