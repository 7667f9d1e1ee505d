// The SentencePiece facade of a model-only build (ICAE_MODEL_ONLY), which links no SentencePiece
// and no protobuf: Load always fails, so no Tokenizer is ever made from it and the other methods
// are unreachable (they return empty values rather than guess).
#include "common/io/spm_processor.h"

namespace icae::internal {

bool SpmAvailable() { return false; }

struct SpmProcessor::Impl {};

SpmProcessor::SpmProcessor() = default;
SpmProcessor::~SpmProcessor() = default;

std::string SpmProcessor::Load(const std::string& path) {
  return "this build has no SentencePiece (ICAE_MODEL_ONLY)";
}
std::string SpmProcessor::Encode(std::string_view text, std::vector<int>* ids) const {
  return "no SentencePiece";
}
std::string SpmProcessor::Decode(const std::vector<int>& ids, std::string* text) const {
  return "no SentencePiece";
}
std::string SpmProcessor::IdToPiece(int id) const { return std::string(); }
int SpmProcessor::PieceToId(std::string_view piece) const { return -1; }
int SpmProcessor::GetPieceSize() const { return 0; }
int SpmProcessor::bos_id() const { return -1; }
int SpmProcessor::eos_id() const { return -1; }
int SpmProcessor::unk_id() const { return -1; }
int SpmProcessor::pad_id() const { return -1; }

}  // namespace icae::internal
