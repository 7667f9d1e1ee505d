// gRPC server credentials from ServerFlags: insecure, TLS (--tls_cert/--tls_key) or mutual TLS
// (plus --tls_client_ca: clients must present a certificate signed by that CA).
#ifndef ICAE_COMMON_SERVING_SERVER_CREDENTIALS_H_
#define ICAE_COMMON_SERVING_SERVER_CREDENTIALS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "absl/status/statusor.h"
#include "common/serving/server_flags.h"

namespace icae {

// NotFound / InvalidArgument name the flag whose file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerFlags& flags);

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_SERVER_CREDENTIALS_H_
