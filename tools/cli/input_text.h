// Reading a span from --token-ids / --text / --file, shared by the compress commands.
#ifndef ICAE_TOOLS_CLI_INPUT_TEXT_H_
#define ICAE_TOOLS_CLI_INPUT_TEXT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/flags.h"

namespace icae::cli {

struct SpanInput {
  std::string token_ids;  // Comma-separated.
  std::string text;
  std::string file;
  bool text_set = false;
};

void RegisterSpanFlags(FlagSet& flags, SpanInput* input);
// Exactly one source must be given; InvalidArgument otherwise (a usage error).
absl::Status ValidateSpanInput(const FlagSet& flags, const SpanInput& input);
// Ids for --token-ids, or the text of --text / --file (read here) in *text.
absl::Status ReadSpan(const FlagSet& flags, const SpanInput& input, std::vector<int>* ids,
                      std::string* text, bool* is_text);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_INPUT_TEXT_H_
