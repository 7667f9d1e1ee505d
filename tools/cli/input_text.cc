#include "tools/cli/input_text.h"

#include "common/io/mapped_file.h"

namespace icae::cli {

void RegisterSpanFlags(FlagSet& flags, SpanInput* input) {
  flags.String("token_ids", &input->token_ids, "span as comma-separated token ids (no BOS added)");
  flags.String("text", &input->text, "span as text (tokenized with BOS, as ICAE does)");
  flags.String("file", &input->file, "span as the text of a file");
}

absl::Status ValidateSpanInput(const FlagSet& flags, const SpanInput& input) {
  const int given = flags.IsSet("token_ids") + flags.IsSet("text") + flags.IsSet("file");
  if (given != 1) {
    return absl::InvalidArgumentError("give exactly one of --token-ids, --text, --file");
  }
  return absl::OkStatus();
}

absl::Status ReadSpan(const FlagSet& flags, const SpanInput& input, std::vector<int>* ids,
                      std::string* text, bool* is_text) {
  *is_text = !flags.IsSet("token_ids");
  if (!*is_text) return ParseIntList(input.token_ids, "--token-ids", ids);
  if (flags.IsSet("text")) {
    *text = input.text;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> contents = ReadFileToString(input.file);
  if (!contents.ok()) return contents.status();
  *text = *std::move(contents);
  return absl::OkStatus();
}

}  // namespace icae::cli
