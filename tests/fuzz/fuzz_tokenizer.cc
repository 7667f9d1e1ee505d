// The SentencePiece tokenizer (the demo model's) on arbitrary bytes: valid UTF-8 encodes to ids
// inside the vocabulary and decodes back; the same bytes read as ids decode or are refused.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/io/tokenizer.h"
#include "common/io/utf8.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace icae;
  const Tokenizer& tokenizer = fuzz::DemoTokenizer();
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  if (IsValidUtf8(text)) {
    absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(text, /*add_bos=*/true);
    fuzz::Require(ids.ok(), "valid UTF-8 did not encode", ids.status().ToString());
    for (int id : *ids)
      fuzz::Require(id >= 0 && id < tokenizer.vocab_size(), "id outside the vocabulary");
    absl::StatusOr<std::string> back = tokenizer.Decode(*ids);
    fuzz::Require(back.ok(), "its own ids did not decode", back.status().ToString());
  }
  // The bytes as little-endian int32 ids, any value: decode or a clear refusal.
  std::vector<int> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  absl::StatusOr<std::string> decoded = tokenizer.Decode(ids);
  if (!decoded.ok()) fuzz::RequireClientCode(decoded.status(), "Tokenizer::Decode");
  return 0;
}
