// Training text: a UTF-8 file of documents separated by empty lines (one paragraph per line, as
// tools/corpus writes them), tokenized into one stream: BOS, the document's tokens, EOS, per
// document. WindowSampler cuts the stream into fixed windows and serves them in a seeded order
// whose position can be saved and restored exactly.
#ifndef ICAE_TOOLS_TRAIN_TOKEN_CORPUS_H_
#define ICAE_TOOLS_TRAIN_TOKEN_CORPUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/io/tokenizer.h"

namespace icae::train {

// Documents as lists of non-empty lines. NotFound / PermissionDenied for a missing or unreadable
// file, InvalidArgument (naming the file) when it holds no text or is not UTF-8.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadDocuments(const std::string& path);

// The token stream of `path`. InvalidArgument when it has fewer than `min_tokens` tokens
// (`what` names the flag in the message).
absl::StatusOr<std::vector<int>> TokenizeCorpus(const std::string& path, const Tokenizer& tokenizer,
                                                int64_t min_tokens, const std::string& what);

// Non-overlapping windows of `window` tokens. Each epoch starts at an offset in [0, window) and
// visits the windows in a permutation; both depend only on (seed, epoch).
class WindowSampler {
 public:
  struct Cursor {
    int64_t epoch = 0;
    int64_t index = 0;  // Windows of this epoch already served.
  };

  // `stream` must outlive the sampler and hold at least 2 * window tokens.
  WindowSampler(const std::vector<int>* stream, int window, uint64_t seed);

  // The next window (advances the cursor; a new epoch begins when one is exhausted).
  std::vector<int> Next();
  Cursor cursor() const { return cursor_; }
  void set_cursor(Cursor cursor);
  int64_t windows_per_epoch() const { return static_cast<int64_t>(order_.size()); }

 private:
  void BuildEpoch(int64_t epoch);

  const std::vector<int>* stream_;
  int window_;
  uint64_t seed_;
  Cursor cursor_;
  int64_t built_epoch_ = -1;
  int64_t offset_ = 0;
  std::vector<int64_t> order_;  // Window starts for the built epoch, in serving order.
};

// Consecutive non-overlapping windows from the start of `stream` (at most `max_windows`): the
// fixed validation set.
std::vector<std::vector<int>> FixedWindows(const std::vector<int>& stream, int window,
                                           int max_windows);

// A small deterministic generator (SplitMix64) for data order; state is one integer.
uint64_t SplitMix64(uint64_t* state);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_TOKEN_CORPUS_H_
