// Flags of `icae generate`, shared by its offline and --decoder forms. No LibTorch.
#ifndef ICAE_TOOLS_CLI_GENERATE_FLAGS_H_
#define ICAE_TOOLS_CLI_GENERATE_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/base/flags.h"
#include "common/model/generation_params.h"

namespace icae::cli {

struct GenerateFlags {
  std::vector<std::string> slots;
  std::string template_name;
  std::string prompt;
  std::string prompt_ids;
  int max_new_tokens = 128;
  double temperature = 0;
  double top_p = 1.0;
  int top_k = 0;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool print_ids = false;
};

struct GenerateRequestSpec {
  std::string template_name;
  std::string prompt_text;      // Set when --prompt was given.
  std::vector<int> prompt_ids;  // Set when --prompt-ids was given.
  GenerationParams params;
};

void RegisterGenerateFlags(FlagSet& flags, GenerateFlags* out);
// Checks the combination (one prompt form at most, ranges) and fills `spec`. The template
// defaults to icae-v2-instruct with a prompt and ae without one.
absl::Status ResolveGenerateFlags(const FlagSet& flags, const GenerateFlags& in,
                                  GenerateRequestSpec* spec);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_GENERATE_FLAGS_H_
