// SentencePiece tokenizer (the model's tokenizer.model). Immutable after Load and thread-safe.
// The SentencePiece header clashes with Debian's abseil, so it stays inside tokenizer.cc.
#ifndef ICAE_COMMON_IO_TOKENIZER_H_
#define ICAE_COMMON_IO_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icae {

class Tokenizer {
 public:
  // Loads a SentencePiece model file; NotFound / InvalidArgument name the file.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // False in a model-only build (ICAE_MODEL_ONLY), which has no SentencePiece: there Load is
  // Unimplemented and models are driven by token ids.
  static bool Available();
  // Loads `<dir>/tokenizer.model`.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFromModelDir(const std::string& dir);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text to ids; `add_bos` prepends bos_id() (HF's default for Llama/Mistral tokenizers).
  // InvalidArgument for text that is not valid UTF-8.
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text, bool add_bos) const;
  // Ids to text. Unknown ids are InvalidArgument; control ids (BOS/EOS) decode to nothing.
  absl::StatusOr<std::string> Decode(const std::vector<int>& ids) const;
  // The piece of one id ("▁the"), and the id of a piece (unk_id() when unknown).
  std::string IdToPiece(int id) const;
  int PieceToId(absl::string_view piece) const;

  int vocab_size() const;
  // Bytes of the longest piece ("▁" counts 3, a byte-fallback piece "<0x0A>" 6): one token covers
  // at most this many bytes of text, so without normalisation that removes bytes (SentencePiece's
  // remove_extra_whitespaces; Llama's and Mistral's tokenizers have none) a text of more than
  // n * max_piece_bytes() bytes has more than n tokens.
  int max_piece_bytes() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;
  int pad_id() const;  // -1 when the model has none.

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Every non-empty line of `text`, stripped and encoded without BOS, concatenated: how held-out
// text is cut into spans (icae eval, icae-train probe), as the trainer tokenizes its corpus lines.
absl::StatusOr<std::vector<int>> EncodeLines(const Tokenizer& tokenizer, absl::string_view text);

}  // namespace icae

#endif  // ICAE_COMMON_IO_TOKENIZER_H_
