#include "tools/train/token_corpus.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"

namespace icae::train {

absl::StatusOr<std::vector<std::vector<std::string>>> ReadDocuments(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("corpus '", path, "' is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat("cannot read corpus '", path, "': ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(why) : absl::PermissionDeniedError(why);
  }
  std::vector<std::vector<std::string>> docs(1);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view stripped = absl::StripAsciiWhitespace(line);
    if (stripped.empty()) {
      if (!docs.back().empty()) docs.emplace_back();
      continue;
    }
    docs.back().emplace_back(stripped);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading corpus '", path, "'"));
  if (docs.back().empty()) docs.pop_back();
  if (docs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("corpus '", path, "' is empty (no text)"));
  }
  return docs;
}

absl::StatusOr<std::vector<int>> TokenizeCorpus(const std::string& path, const Tokenizer& tokenizer,
                                                int64_t min_tokens, const std::string& what) {
  ASSIGN_OR_RETURN(auto docs, ReadDocuments(path));
  std::vector<int> stream;
  for (const auto& doc : docs) {
    stream.push_back(tokenizer.bos_id());
    for (const std::string& line : doc) {
      absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(line, /*add_bos=*/false);
      if (!ids.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("corpus '", path, "': ", ids.status().message()));
      }
      stream.insert(stream.end(), ids->begin(), ids->end());
    }
    stream.push_back(tokenizer.eos_id());
  }
  if (static_cast<int64_t>(stream.size()) < min_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", path, "' has ", stream.size(),
                                                   " tokens; at least ", min_tokens,
                                                   " are needed"));
  }
  return stream;
}

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

WindowSampler::WindowSampler(const std::vector<int>* stream, int window, uint64_t seed)
    : stream_(stream), window_(window), seed_(seed) {}

void WindowSampler::BuildEpoch(int64_t epoch) {
  uint64_t state = seed_ * 0x2545f4914f6cdd1dULL + static_cast<uint64_t>(epoch) + 1;
  offset_ = static_cast<int64_t>(SplitMix64(&state) % window_);
  const int64_t count = (static_cast<int64_t>(stream_->size()) - offset_) / window_;
  order_.resize(count);
  for (int64_t i = 0; i < count; ++i) order_[i] = offset_ + i * window_;
  for (int64_t i = count - 1; i > 0; --i) {  // Fisher-Yates.
    const int64_t j = static_cast<int64_t>(SplitMix64(&state) % static_cast<uint64_t>(i + 1));
    std::swap(order_[i], order_[j]);
  }
  built_epoch_ = epoch;
}

std::vector<int> WindowSampler::Next() {
  if (built_epoch_ != cursor_.epoch) BuildEpoch(cursor_.epoch);
  if (cursor_.index >= static_cast<int64_t>(order_.size())) {
    ++cursor_.epoch;
    cursor_.index = 0;
    BuildEpoch(cursor_.epoch);
  }
  const int64_t start = order_[cursor_.index++];
  return std::vector<int>(stream_->begin() + start, stream_->begin() + start + window_);
}

void WindowSampler::set_cursor(Cursor cursor) { cursor_ = cursor; }

std::vector<std::vector<int>> FixedWindows(const std::vector<int>& stream, int window,
                                           int max_windows) {
  std::vector<std::vector<int>> windows;
  for (size_t start = 0;
       start + window <= stream.size() && static_cast<int>(windows.size()) < max_windows;
       start += window) {
    windows.emplace_back(stream.begin() + start, stream.begin() + start + window);
  }
  return windows;
}

}  // namespace icae::train
