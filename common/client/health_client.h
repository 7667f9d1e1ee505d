// grpc.health.v1 client (Check only), for scripts, tests and readiness waits. The two tiny messages
// are encoded by hand so no generated health code is needed. Thread-safe.
#ifndef ICAE_COMMON_CLIENT_HEALTH_CLIENT_H_
#define ICAE_COMMON_CLIENT_HEALTH_CLIENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/client/client_options.h"

namespace icae {

enum class HealthState { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

absl::string_view HealthStateName(HealthState state);

// grpc.health.v1.Health/Check for `service` ("" = the whole server). The call's own failures
// (UNAVAILABLE, NOT_FOUND for an unknown service name, ...) come back as the status. No bearer
// token is needed; the connection's token is sent anyway.
absl::StatusOr<HealthState> CheckHealth(const Connection& connection, absl::string_view service,
                                        absl::Duration timeout = absl::Seconds(5));

// Polls CheckHealth every 50 ms until SERVING; DeadlineExceeded after `timeout`, naming the last
// state or error seen.
absl::Status WaitForServing(const Connection& connection, absl::string_view service,
                            absl::Duration timeout);

}  // namespace icae

#endif  // ICAE_COMMON_CLIENT_HEALTH_CLIENT_H_
