// A small synchronous Redis client for the slot store, over hiredis: pipelined GET/GETEX and
// SET PX, AUTH and SELECT from the URL, a pool of connections, and a circuit breaker so that a
// Redis that is down costs one failed connect per back-off period, not one per request.
//
//   ASSIGN_OR_RETURN(RedisOptions options, ParseRedisUrl("redis://:secret@10.0.0.5:6379/2"));
//   RedisClient redis(options);
//   ASSIGN_OR_RETURN(auto values, redis.Get({"k1", "k2"}, absl::Minutes(10)));  // one round trip
//   RETURN_IF_ERROR(redis.Set({{"k1", "v"}}, absl::Minutes(10)));
//
// Every failure is an absl::Status: Unavailable (cannot connect, connection lost, I/O timeout, or
// the breaker is open after a recent failure), Internal (Redis answered with an error). A failed
// connection is closed, never reused. Thread-safe: each call holds one pooled connection.
#ifndef ICAE_COMMON_STORE_REDIS_CLIENT_H_
#define ICAE_COMMON_STORE_REDIS_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct redisContext;

namespace icae {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;  // Redis 6 ACL user; empty: the default user
  std::string password;  // empty: no AUTH
  // Connect and per-operation I/O timeouts.
  absl::Duration connect_timeout = absl::Milliseconds(200);
  absl::Duration io_timeout = absl::Milliseconds(200);
  // After a failure, calls fail fast with Unavailable for this long before one tries again.
  absl::Duration retry_backoff = absl::Seconds(1);
  // Idle connections kept for reuse.
  int max_idle_connections = 8;

  // "host:port/db" without the password, for logs and GetInfo.
  std::string Describe() const;
};

// Parses redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]. rediss:// (TLS) is refused: Debian 12's
// hiredis (0.14) has no TLS; reach a TLS Redis through a local TLS proxy. InvalidArgument naming
// the problem for anything else malformed.
absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url);

class RedisClient {
 public:
  explicit RedisClient(RedisOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // The value of each key, nullopt where it does not exist, in one pipelined round trip. With
  // `refresh_ttl` > 0 each read also renews the key's expiry (GETEX PX, Redis >= 6.2).
  absl::StatusOr<std::vector<std::optional<std::string>>> Get(absl::Span<const std::string> keys,
                                                              absl::Duration refresh_ttl);
  // SET key value [PX ttl] for each entry, in one pipelined round trip. ttl <= 0: no expiry.
  absl::Status Set(absl::Span<const std::pair<std::string, std::string>> entries,
                   absl::Duration ttl);
  // DEL for each key (tests and tools).
  absl::Status Delete(absl::Span<const std::string> keys);
  absl::Status Ping();

  const RedisOptions& options() const { return options_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };
  using Connection = std::unique_ptr<redisContext, ContextDeleter>;

  // A pooled or new connection (connected, authenticated, database selected).
  absl::StatusOr<Connection> Acquire();
  void Release(Connection connection);
  // Opens the breaker after `status` (an I/O or connect failure) and returns it.
  absl::Status Failed(absl::Status status);
  // Sends `commands` pipelined and reads one reply each; `on_reply(i, reply)` sees each.
  template <typename OnReply>
  absl::Status Pipeline(const std::vector<std::vector<absl::string_view>>& commands,
                        OnReply on_reply);

  const RedisOptions options_;
  absl::Mutex mu_;
  std::vector<Connection> idle_ ABSL_GUARDED_BY(mu_);
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace icae

#endif  // ICAE_COMMON_STORE_REDIS_CLIENT_H_
