// icae health --address HOST:PORT [--service NAME] [--wait SECONDS] [TLS / token flags]
// Prints the grpc.health.v1 state; exit 0 when SERVING. With --wait, polls until SERVING or the
// time is up (scripts use it to wait for a model to load).
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/client/health_client.h"
#include "tools/cli/cli.h"
#include "tools/cli/remote_generate.h"

namespace icae::cli {

int RunHealth(const Args& args) {
  const std::string cmd = "health";
  FlagSet flags("icae health --address HOST:PORT [--service NAME] [--wait SECONDS]");
  ClientOptions options;
  std::string service;
  double wait_seconds = 0, timeout_seconds = 5;
  flags.StringList("address", &options.addresses, "server address HOST:PORT");
  flags.String("service", &service, "service name (empty = the whole server)");
  flags.Double("wait", &wait_seconds, "poll until SERVING for up to this many seconds");
  RegisterClientFlags(flags, &options, &timeout_seconds);
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (options.addresses.empty()) return UsageError(cmd, "--address is required");
  if (wait_seconds < 0) return UsageError(cmd, "--wait must be >= 0");
  options.max_attempts = 1;
  auto connection = Connection::Create(options);
  if (!connection.ok()) return Failure(cmd, connection.status());
  if (wait_seconds > 0) {
    absl::Status status = WaitForServing(**connection, service, absl::Seconds(wait_seconds));
    if (!status.ok()) return Failure(cmd, status);
    std::cout << "SERVING\n";
    return kExitOk;
  }
  auto state = CheckHealth(**connection, service, absl::Seconds(timeout_seconds));
  if (!state.ok()) return Failure(cmd, state.status());
  std::cout << HealthStateName(*state) << "\n";
  return *state == HealthState::kServing ? kExitOk : kExitFailure;
}

}  // namespace icae::cli
