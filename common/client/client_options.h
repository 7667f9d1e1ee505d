// Client-side connection to an icae service: channel creation and per-call setup.
//
//   ClientOptions options;
//   options.addresses = {"10.0.0.5:50051", "10.0.0.6:50051"};  // or {"dns:///encoder:50051"}
//   options.auth_token_file = "/etc/icae/token";
//   ASSIGN_OR_RETURN(std::shared_ptr<const Connection> conn, Connection::Create(options));
//   EncoderClient encoder(conn);
//
// The channel balances calls round-robin over every address (several literal addresses become one
// "ipv4:a,b" / "ipv6:[a],[b]" target; a dns:/// name balances over what it resolves to), and
// retries UNAVAILABLE (a replica going away or draining) on another address through gRPC's retry
// policy, up to `max_attempts` attempts in all. No LibTorch; thread-safe once created.
#ifndef ICAE_COMMON_CLIENT_CLIENT_OPTIONS_H_
#define ICAE_COMMON_CLIENT_CLIENT_OPTIONS_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace icae {

struct ClientOptions {
  // One or more "HOST:PORT" (IP literals or "localhost" when more than one), or exactly one gRPC
  // target URI ("dns:///encoder.ns.svc:50051", "ipv4:1.2.3.4:50051,1.2.3.5:50051", "unix:/p").
  std::vector<std::string> addresses;
  // Max message size sent and received, bytes (the server's --max_message_bytes).
  int64_t max_message_bytes = 64 << 20;
  // TLS: on when `tls` is true or any tls_* file is given. CA file empty = the system roots.
  bool tls = false;
  std::string tls_ca_file;
  // Client certificate and key (mutual TLS): both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Name checked against the server certificate instead of the target's host (tests, IP targets).
  std::string tls_server_name;
  // Bearer token sent as "authorization: Bearer <token>", or a file holding it (read at Create).
  std::string auth_token;
  std::string auth_token_file;
  // Deadline of every call unless the call gives its own; absl::InfiniteDuration() = none.
  absl::Duration timeout = absl::Seconds(60);
  // Attempts per call when the answer is UNAVAILABLE (1 = no retry; gRPC caps this at 5).
  int max_attempts = 3;
};

// The channel's target string for `addresses` (exposed for tests and logs).
absl::StatusOr<std::string> BuildTarget(const std::vector<std::string>& addresses);
// The service config JSON: round_robin plus the retry policy for icae.v1.Encoder/Decoder.
std::string BuildServiceConfig(int max_attempts);

class Connection {
 public:
  // InvalidArgument names the bad option; NotFound names an unreadable file.
  static absl::StatusOr<std::shared_ptr<const Connection>> Create(const ClientOptions& options);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& target() const { return target_; }

  // Sets the call's deadline (`timeout`, or the default when absl::ZeroDuration()) and the bearer
  // token on `context`. Call once per ClientContext before the RPC.
  void PrepareContext(grpc::ClientContext* context,
                      absl::Duration timeout = absl::ZeroDuration()) const;

 private:
  Connection() = default;
  std::shared_ptr<grpc::Channel> channel_;
  std::string target_;
  std::string authorization_;  // "Bearer <token>" or empty
  absl::Duration timeout_;
};

}  // namespace icae

#endif  // ICAE_COMMON_CLIENT_CLIENT_OPTIONS_H_
