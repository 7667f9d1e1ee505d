// icae tokenize --model DIR --text STR [--no-bos]: prints the ids, comma-separated.
#include <iostream>

#include "absl/strings/str_join.h"
#include "common/io/tokenizer.h"
#include "tools/cli/cli.h"

namespace icae::cli {

int RunTokenize(const Args& args) {
  const std::string cmd = "tokenize";
  FlagSet flags("icae tokenize --model DIR --text STR");
  std::string model, text;
  bool bos = false;
  flags.String("model", &model, "model directory holding tokenizer.model");
  flags.String("text", &text, "text to tokenize");
  flags.Bool("bos", &bos, "prepend the BOS id");
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (model.empty()) return UsageError(cmd, "--model is required");
  if (!flags.IsSet("text")) return UsageError(cmd, "--text is required");
  auto tokenizer = Tokenizer::LoadFromModelDir(model);
  if (!tokenizer.ok()) return Failure(cmd, tokenizer.status());
  auto ids = (*tokenizer)->Encode(text, bos);
  if (!ids.ok()) return Failure(cmd, ids.status());
  std::cout << absl::StrJoin(*ids, ",") << "\n";
  return kExitOk;
}

}  // namespace icae::cli
