#include "common/io/spm_processor.h"

#include <sentencepiece_processor.h>

namespace icae::internal {

bool SpmAvailable() { return true; }

struct SpmProcessor::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SpmProcessor::SpmProcessor() : impl_(std::make_unique<Impl>()) {}
SpmProcessor::~SpmProcessor() = default;

std::string SpmProcessor::Load(const std::string& path) {
  const auto status = impl_->processor.Load(path);
  return status.ok() ? std::string() : status.ToString();
}

std::string SpmProcessor::Encode(std::string_view text, std::vector<int>* ids) const {
  const auto status = impl_->processor.Encode(text, ids);
  return status.ok() ? std::string() : status.ToString();
}

std::string SpmProcessor::Decode(const std::vector<int>& ids, std::string* text) const {
  const auto status = impl_->processor.Decode(ids, text);
  return status.ok() ? std::string() : status.ToString();
}

std::string SpmProcessor::IdToPiece(int id) const { return impl_->processor.IdToPiece(id); }
int SpmProcessor::PieceToId(std::string_view piece) const {
  return impl_->processor.PieceToId(piece);
}
int SpmProcessor::GetPieceSize() const { return impl_->processor.GetPieceSize(); }
int SpmProcessor::bos_id() const { return impl_->processor.bos_id(); }
int SpmProcessor::eos_id() const { return impl_->processor.eos_id(); }
int SpmProcessor::unk_id() const { return impl_->processor.unk_id(); }
int SpmProcessor::pad_id() const { return impl_->processor.pad_id(); }

}  // namespace icae::internal
