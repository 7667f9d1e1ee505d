// The one mapping between absl::Status and grpc::Status.
//
// Every server handler finishes its RPC with ToGrpcStatus(status); every client wrapper returns
// FromGrpcStatus(grpc_status). absl::StatusCode and grpc::StatusCode share their numeric values and
// meanings (both follow google.rpc.Code), so each code maps to the code of the same name; the
// message is kept verbatim. Payloads are dropped (gRPC status details are not used by this API).
// Thread-safe (pure functions).
#ifndef ICAE_COMMON_SERVING_STATUS_GRPC_H_
#define ICAE_COMMON_SERVING_STATUS_GRPC_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace icae {

// absl -> gRPC. An out-of-range absl code becomes UNKNOWN (with the message kept).
grpc::Status ToGrpcStatus(const absl::Status& status);

// gRPC -> absl. An out-of-range gRPC code becomes kUnknown (with the message kept).
absl::Status FromGrpcStatus(const grpc::Status& status);

// The canonical upper-case name of a gRPC code ("OK", "INVALID_ARGUMENT", ...), as used in the
// `code` label of icae_<svc>_requests_total. Out-of-range codes give "UNKNOWN".
absl::string_view GrpcCodeName(grpc::StatusCode code);

// Number of gRPC status codes (OK = 0 .. UNAUTHENTICATED = 16).
inline constexpr int kNumGrpcCodes = 17;

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_STATUS_GRPC_H_
