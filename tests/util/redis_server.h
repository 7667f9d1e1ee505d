// A real redis-server (Debian's, installed by tools/setup.sh) on a free loopback port, for the
// slot-store tests: started on construction via Start, killed (SIGKILL) by Kill or on
// destruction, restartable on the same port. No persistence (save "", no AOF).
#ifndef ICAE_TESTS_UTIL_REDIS_SERVER_H_
#define ICAE_TESTS_UTIL_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace icae::testing {

class RedisServer {
 public:
  // Fails (NotFound) when redis-server is missing: the tests need it, setup installs it.
  // `extra_args` go to redis-server as is (e.g. {"--requirepass", "secret"}).
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  // "redis://127.0.0.1:PORT"
  std::string url() const;
  // SIGKILL and reap; idempotent.
  void Kill();
  // Starts again on the same port (empty: nothing persisted).
  absl::Status Restart();

 private:
  RedisServer() = default;
  absl::Status Launch();
  std::vector<std::string> extra_args_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace icae::testing

#endif  // ICAE_TESTS_UTIL_REDIS_SERVER_H_
