#include "common/base/sha256.h"

#include <cstdint>

namespace icae {

void Sha256::UpdateField(absl::string_view bytes) {
  const uint64_t size = bytes.size();
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(size >> (8 * i));
  Update(prefix, sizeof(prefix));
  Update(bytes);
}

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 hasher;
  hasher.Update(bytes);
  return hasher.HexDigest();
}

}  // namespace icae
