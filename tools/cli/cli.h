// The `icae` command-line tool: one function per subcommand, each in its own file. Exit codes:
// 0 success, 1 a failed load or run (the Status is printed), 2 bad arguments (one line).
#ifndef ICAE_TOOLS_CLI_CLI_H_
#define ICAE_TOOLS_CLI_CLI_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/base/flags.h"

namespace icae::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Arguments after the subcommand name.
using Args = std::vector<std::string>;

int RunLogits(const Args& args);
int RunCompress(const Args& args);
int RunGenerate(const Args& args);
int RunTokenize(const Args& args);
int RunAsk(const Args& args);
int RunEval(const Args& args);
int RunHealth(const Args& args);
int RunDemo(const Args& args);

// Parses `args` into `flags`; on --help prints usage and returns kExitOk in *exit_code; on
// an error prints "icae <command>: <reason>" and returns kExitUsage. Returns true to go on.
bool ParseCommandFlags(FlagSet& flags, const std::string& command, const Args& args,
                       int* exit_code);
// Prints "icae <command>: <message>" to stderr and returns kExitUsage.
int UsageError(const std::string& command, const std::string& message);
// Prints "icae <command>: <status>" to stderr and returns kExitFailure.
int Failure(const std::string& command, const absl::Status& status);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_CLI_H_
