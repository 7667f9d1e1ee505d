#include "tools/train/finetune_data.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace icae::train {

absl::StatusOr<std::vector<TokenizedExample>> ReadFinetuneExamples(const std::string& path,
                                                                   const Tokenizer& tokenizer,
                                                                   int max_context_tokens) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat("cannot read '", path, "': ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(why) : absl::PermissionDeniedError(why);
  }
  std::vector<TokenizedExample> examples;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(path, ":", number);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
    }
    TokenizedExample e;
    for (auto [key, out] : {std::pair<const char*, std::vector<int>*>{"context", &e.context},
                            {"prompt", &e.prompt},
                            {"answer", &e.answer}}) {
      auto it = j.find(key);
      if (it == j.end()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": missing field \"", key,
                                                       "\" (each line needs \"context\", "
                                                       "\"prompt\" and \"answer\")"));
      }
      if (!it->is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": field \"", key, "\" must be a string"));
      }
      absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(it->get<std::string>(), false);
      if (!ids.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": field \"", key, "\": ", ids.status().message()));
      }
      *out = *std::move(ids);
    }
    if (e.context.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"context\" is empty"));
    }
    if (e.answer.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"answer\" is empty"));
    }
    if (static_cast<int>(e.context.size()) > max_context_tokens) {
      e.context.resize(max_context_tokens);
    }
    examples.push_back(std::move(e));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading '", path, "'"));
  if (examples.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no examples"));
  }
  return examples;
}

}  // namespace icae::train
