// Text of a growing id sequence without decoding the whole sequence at every token (which makes
// a long generation O(n^2)): each Push decodes only a short window of recent ids, and the text of
// everything before it is kept. The result equals Tokenizer::Decode of all ids pushed so far.
#ifndef ICAE_COMMON_IO_INCREMENTAL_DECODER_H_
#define ICAE_COMMON_IO_INCREMENTAL_DECODER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/io/tokenizer.h"

namespace icae {

class IncrementalDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  explicit IncrementalDecoder(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}

  // Appends `id`; InvalidArgument for an id the tokenizer does not know (nothing changes then).
  absl::Status Push(int id);
  // Decode(ids) of every id pushed.
  const std::string& text() const { return text_; }
  const std::vector<int>& ids() const { return ids_; }

 private:
  // Ids decoded again with each push before the first uncommitted one: enough context for a
  // piece's leading space, and for a character spelled by up to 4 byte-fallback pieces.
  static constexpr size_t kContext = 4;

  const Tokenizer* tokenizer_;
  std::vector<int> ids_;
  std::string text_;
  // ids_[0, committed_) are final: their text is text_[0, committed_bytes_) and no later id can
  // change it (the window decoded last ended in complete UTF-8 without a replacement character).
  size_t committed_ = 0;
  size_t committed_bytes_ = 0;
};

}  // namespace icae

#endif  // ICAE_COMMON_IO_INCREMENTAL_DECODER_H_
