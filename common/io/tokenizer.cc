#include "common/io/tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/io/checkpoint.h"
#include "common/io/spm_processor.h"
#include "common/io/utf8.h"

namespace icae {

struct Tokenizer::Impl {
  internal::SpmProcessor processor;
  int max_piece_bytes = 1;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

bool Tokenizer::Available() { return internal::SpmAvailable(); }

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  if (!Available()) {
    return absl::UnimplementedError(
        absl::StrCat("cannot load tokenizer ", path,
                     ": this is a model-only build (ICAE_MODEL_ONLY) without SentencePiece; "
                     "pass token ids"));
  }
  if (!FileExists(path)) return absl::NotFoundError(absl::StrCat("tokenizer not found: ", path));
  auto impl = std::make_unique<Impl>();
  const std::string error = impl->processor.Load(path);
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load tokenizer ", path, ": ", error));
  }
  for (int id = 0; id < impl->processor.GetPieceSize(); ++id) {
    impl->max_piece_bytes =
        std::max<int>(impl->max_piece_bytes, impl->processor.IdToPiece(id).size());
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::LoadFromModelDir(const std::string& dir) {
  return Load(JoinPath(dir, "tokenizer.model"));
}

absl::StatusOr<std::vector<int>> Tokenizer::Encode(absl::string_view text, bool add_bos) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  std::vector<int> ids;
  const std::string error =
      impl_->processor.Encode(std::string_view(text.data(), text.size()), &ids);
  if (!error.empty()) return absl::InternalError(absl::StrCat("tokenizer: ", error));
  if (add_bos && bos_id() >= 0) ids.insert(ids.begin(), bos_id());
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int>& ids) const {
  const int vocab = vocab_size();
  for (int id : ids) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " outside the vocabulary [0, ", vocab, ")"));
    }
  }
  std::string text;
  const std::string error = impl_->processor.Decode(ids, &text);
  if (!error.empty()) return absl::InternalError(absl::StrCat("tokenizer: ", error));
  return text;
}

std::string Tokenizer::IdToPiece(int id) const {
  if (id < 0 || id >= vocab_size()) return std::string();
  return impl_->processor.IdToPiece(id);
}

int Tokenizer::PieceToId(absl::string_view piece) const {
  return impl_->processor.PieceToId(std::string_view(piece.data(), piece.size()));
}

int Tokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }
int Tokenizer::max_piece_bytes() const { return impl_->max_piece_bytes; }
int Tokenizer::bos_id() const { return impl_->processor.bos_id(); }
int Tokenizer::eos_id() const { return impl_->processor.eos_id(); }
int Tokenizer::unk_id() const { return impl_->processor.unk_id(); }
int Tokenizer::pad_id() const { return impl_->processor.pad_id(); }

}  // namespace icae
