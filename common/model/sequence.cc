#include "common/model/sequence.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/io/utf8.h"

namespace icae {

Sequence::Sequence(KVCache cache, GenerationParams params, const Tokenizer* tokenizer, int eos_id,
                   int vocab_size)
    : cache_(std::move(cache)),
      params_(std::move(params)),
      tokenizer_(tokenizer),
      eos_id_(eos_id),
      vocab_size_(vocab_size),
      sampler_(params_.sampling) {
  if (tokenizer_ != nullptr) detokenizer_.emplace(tokenizer_);
}

int Sequence::Accept(const at::Tensor& logits) {
  at::Tensor row = logits.to(at::kCPU, at::kFloat).contiguous();
  return Accept(row.data_ptr<float>());
}

int Sequence::Accept(const float* logits) {
  const int id = sampler_.Sample(logits, vocab_size_);
  last_token_ = id;
  if (id == eos_id_) {
    reason_ = FinishReason::kEos;
    return id;
  }
  ids_.push_back(id);
  UpdateText();
  if (reason_ == FinishReason::kNone && static_cast<int>(ids_.size()) >= params_.max_new_tokens) {
    reason_ = FinishReason::kLength;
  }
  return id;
}

void Sequence::UpdateText() {
  if (!detokenizer_ || !detokenizer_->Push(ids_.back()).ok()) return;
  text_ = detokenizer_->text();
  // The earliest stop string ends generation; the text is cut before it.
  size_t cut = std::string::npos;
  for (const std::string& stop : params_.stop) {
    // A stop string can only newly appear near the end, but the decoded prefix may change as
    // multi-byte characters complete, so search the unemitted part.
    const size_t from = emitted_ > stop.size() ? emitted_ - stop.size() : 0;
    const size_t at = text_.find(stop, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(cut);
    reason_ = FinishReason::kStop;
  }
}

std::string Sequence::TakeNewText() {
  size_t end = text_.size();
  if (!finished()) {
    // Hold back an incomplete UTF-8 character, a replacement character that may still resolve,
    // and any tail that is a prefix of a stop string.
    end = CompleteUtf8Prefix(text_);
    static constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";
    if (absl::string_view(text_).substr(0, end).size() >= 3 &&
        absl::string_view(text_.data() + end - 3, 3) == kReplacement) {
      end -= 3;
    }
    for (const std::string& stop : params_.stop) {
      for (size_t len = std::min(stop.size() - 1, end); len > 0; --len) {
        if (absl::string_view(text_.data() + end - len, len) ==
            absl::string_view(stop).substr(0, len)) {
          end -= len;
          break;
        }
      }
    }
  }
  if (end <= emitted_) return std::string();
  std::string delta = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return delta;
}

}  // namespace icae
