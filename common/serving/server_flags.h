// Runtime options common to the encoder and decoder servers (docs/operations.md, "Flags common to
// both servers"), their registration on a FlagSet, and their validation.
//
//   ServerFlags server_flags;
//   FlagSet flags("icae-encoder --model DIR --adapter PATH [options]");
//   RegisterServerFlags(flags, "0.0.0.0:50051", "0.0.0.0:9091", &server_flags);
//   ... service-specific flags ...
//   ParseFlagsOrExit(flags, argc, argv);
//   if (absl::Status s = ValidateServerFlags(server_flags); !s.ok()) { ...exit 2... }
#ifndef ICAE_COMMON_SERVING_SERVER_FLAGS_H_
#define ICAE_COMMON_SERVING_SERVER_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/flags.h"
#include "common/base/runtime_options.h"

namespace icae {

inline constexpr int64_t kDefaultMaxMessageBytes = 64 << 20;

// Plain values; an empty string means "unset". Defaults are the documented ones except `listen`
// and `metrics_listen`, which RegisterServerFlags sets per service.
struct ServerFlags {
  std::string model;           // HF model directory (required by ValidateServerFlags)
  std::string adapter;         // ICAE adapter file or directory (required by ValidateServerFlags)
  std::string listen;          // gRPC HOST:PORT; port 0 picks a free port
  std::string metrics_listen;  // Prometheus HOST:PORT; empty disables the HTTP endpoint
  RuntimeOptions runtime;       // --device, --dtype, --threads
  int64_t max_message_bytes = kDefaultMaxMessageBytes;  // gRPC max receive and send size
  double drain_seconds = 30;    // on SIGTERM/SIGINT: time for in-flight work before shutdown
  std::string tls_cert;         // PEM certificate chain; with tls_key: serve TLS
  std::string tls_key;          // PEM private key
  std::string tls_client_ca;    // PEM CA bundle; requires TLS; clients must present a cert (mTLS)
  std::string auth_token_file;  // file holding the bearer token every RPC must carry
  // Server reflection: "auto" serves it only without --auth_token_file (reflection cannot check a
  // token, so a token closes it), "on" serves it to anyone (as health), "off" never.
  std::string reflection = "auto";
};

// Whether the server registers gRPC server reflection under `flags` (see ServerFlags::reflection).
bool ReflectionEnabled(const ServerFlags& flags);

// Registers every common flag on `flags`, bound to the fields of `out` (which must outlive the
// FlagSet's use). `default_listen` / `default_metrics_listen` become the defaults of --listen and
// --metrics_listen; the other fields keep their current values as defaults.
void RegisterServerFlags(FlagSet& flags, absl::string_view default_listen,
                         absl::string_view default_metrics_listen, ServerFlags* out);

// Full check for a server's main(): model and adapter given and present, device and dtype known,
// threads >= 0, plus everything ValidateTransportFlags checks. InvalidArgument names the flag.
absl::Status ValidateServerFlags(const ServerFlags& flags);

// The network half, also run by ServerRunner::Create: addresses parse (HOST:PORT, IPv6 in
// brackets, port 0..65535), max_message_bytes in (0, 2^31), drain_seconds >= 0, tls_cert and
// tls_key given together and readable, tls_client_ca only with TLS and readable,
// auth_token_file readable and non-empty.
absl::Status ValidateTransportFlags(const ServerFlags& flags);

// A parsed listen address. `host` keeps IPv6 brackets off ("::"); ToString() puts them back.
struct HostPort {
  std::string host;
  int port = 0;
  std::string ToString() const;
};

// Parses "HOST:PORT" ("0.0.0.0:50051", "localhost:0", "[::]:9091"). `flag` names the flag in the
// InvalidArgument message.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view flag);

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_SERVER_FLAGS_H_
