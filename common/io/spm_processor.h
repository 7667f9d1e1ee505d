// A std-only facade over sentencepiece::SentencePieceProcessor. SentencePiece's header redeclares
// absl::string_view and clashes with Debian's abseil, so spm_processor.cc is the one translation
// unit that includes it, and this header uses no abseil either. Use Tokenizer instead.
#ifndef ICAE_COMMON_IO_SPM_PROCESSOR_H_
#define ICAE_COMMON_IO_SPM_PROCESSOR_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace icae::internal {

// False in a model-only build (spm_unavailable.cc): there every Load fails and no processor is
// ever usable.
bool SpmAvailable();

class SpmProcessor {
 public:
  SpmProcessor();
  ~SpmProcessor();
  SpmProcessor(const SpmProcessor&) = delete;
  SpmProcessor& operator=(const SpmProcessor&) = delete;

  // Each returns an empty string on success, else SentencePiece's error text.
  std::string Load(const std::string& path);
  std::string Encode(std::string_view text, std::vector<int>* ids) const;
  std::string Decode(const std::vector<int>& ids, std::string* text) const;

  std::string IdToPiece(int id) const;
  int PieceToId(std::string_view piece) const;
  int GetPieceSize() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;
  int pad_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace icae::internal

#endif  // ICAE_COMMON_IO_SPM_PROCESSOR_H_
