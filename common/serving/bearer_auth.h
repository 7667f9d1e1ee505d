// Bearer-token check for incoming RPCs: `authorization: Bearer <token>` must carry the configured
// token. The comparison runs over SHA-256 digests with a constant-time compare, so neither the
// token's content nor its length leaks through timing.
//
// gRPC 1.51's C++ server interceptors cannot reject a call (no hijacking on the server side) and
// AuthMetadataProcessor is refused by insecure server credentials, so the check is made by
// RpcGate::Admit, which every handler calls first (see rpc_gate.h). grpc.health.v1 and server
// reflection never pass through the gate and stay open. Thread-safe (immutable after creation).
#ifndef ICAE_COMMON_SERVING_BEARER_AUTH_H_
#define ICAE_COMMON_SERVING_BEARER_AUTH_H_

#include <grpcpp/support/string_ref.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace icae {

class BearerAuth {
 public:
  // `token` must be non-empty.
  explicit BearerAuth(const std::string& token);
  // Reads the token with ReadTokenFile (surrounding whitespace stripped).
  static absl::StatusOr<std::unique_ptr<BearerAuth>> FromFile(const std::string& path);

  // OK when the metadata's first `authorization` entry is "Bearer <token>" (scheme
  // case-insensitive); UNAUTHENTICATED otherwise, saying whether the header was missing or wrong.
  absl::Status Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  std::string digest_;  // SHA-256 (hex) of the expected token
};

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_BEARER_AUTH_H_
