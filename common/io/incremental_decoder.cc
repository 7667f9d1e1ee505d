#include "common/io/incremental_decoder.h"

#include "absl/strings/match.h"
#include "common/base/status_macros.h"
#include "common/io/utf8.h"

namespace icae {

absl::Status IncrementalDecoder::Push(int id) {
  // Decode the window [start, end) and the context [start, committed_) before it: the window's
  // text past the context's text is what the uncommitted ids add to the committed text. Both
  // decodes start at the same id, so whatever the decoder does at a start (a dropped leading
  // space, an orphan continuation byte) is the same in both and cancels.
  const size_t start = committed_ > kContext ? committed_ - kContext : 0;
  std::vector<int> window(ids_.begin() + start, ids_.end());
  window.push_back(id);
  ASSIGN_OR_RETURN(std::string window_text, tokenizer_->Decode(window));
  ASSIGN_OR_RETURN(std::string context_text,
                   tokenizer_->Decode(std::vector<int>(ids_.begin() + start,
                                                       ids_.begin() + committed_)));
  if (!absl::StartsWith(window_text, context_text)) {
    // The new ids changed how the context decodes (not seen with SentencePiece; kept exact anyway).
    ASSIGN_OR_RETURN(std::string all, tokenizer_->Decode([&] {
                       std::vector<int> v = ids_;
                       v.push_back(id);
                       return v;
                     }()));
    ids_.push_back(id);
    text_ = std::move(all);
    committed_ = 0;
    committed_bytes_ = 0;
    return absl::OkStatus();
  }
  ids_.push_back(id);
  text_.resize(committed_bytes_);
  text_.append(window_text, context_text.size(), std::string::npos);
  // Commit when the text ends cleanly: complete UTF-8 and no replacement character that a later
  // byte piece could still turn into a real one.
  static constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";
  if (CompleteUtf8Prefix(text_) == text_.size() && !absl::EndsWith(text_, kReplacement)) {
    committed_ = ids_.size();
    committed_bytes_ = text_.size();
  }
  return absl::OkStatus();
}

}  // namespace icae
