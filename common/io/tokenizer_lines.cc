// EncodeLines lives apart from tokenizer.cc: that file is the one that includes SentencePiece.
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/io/tokenizer.h"

namespace icae {

absl::StatusOr<std::vector<int>> EncodeLines(const Tokenizer& tokenizer, absl::string_view text) {
  std::vector<int> ids;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    ASSIGN_OR_RETURN(std::vector<int> encoded, tokenizer.Encode(line, /*add_bos=*/false));
    ids.insert(ids.end(), encoded.begin(), encoded.end());
  }
  return ids;
}

}  // namespace icae
