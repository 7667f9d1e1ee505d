// The icae-train subcommands: parse flags, build the task, run the shared training loop.
#ifndef ICAE_TOOLS_TRAIN_COMMANDS_H_
#define ICAE_TOOLS_TRAIN_COMMANDS_H_

#include <string>
#include <vector>

namespace icae::train {

int RunLm(const std::vector<std::string>& args);
int RunPretrain(const std::vector<std::string>& args);
int RunCross(const std::vector<std::string>& args);
int RunFinetune(const std::vector<std::string>& args);
int RunProbe(const std::vector<std::string>& args);
int RunRescale(const std::vector<std::string>& args);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_COMMANDS_H_
