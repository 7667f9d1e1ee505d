#include "tools/cli/cli.h"

#include <cstdio>
#include <iostream>

namespace icae::cli {

bool ParseCommandFlags(FlagSet& flags, const std::string& command, const Args& args,
                       int* exit_code) {
  absl::Status status = flags.Parse(args);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    *exit_code = kExitOk;
    return false;
  }
  if (!status.ok()) {
    *exit_code = UsageError(command, std::string(status.message()));
    return false;
  }
  return true;
}

int UsageError(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "icae %s: %s\n", command.c_str(), message.c_str());
  return kExitUsage;
}

int Failure(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "icae %s: %s\n", command.c_str(), status.ToString().c_str());
  return kExitFailure;
}

}  // namespace icae::cli
