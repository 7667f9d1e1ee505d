// SHA-256 over byte strings, as lower-case hex. Used for content addresses and model fingerprints.
#ifndef ICAE_COMMON_BASE_SHA256_H_
#define ICAE_COMMON_BASE_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace icae {

// Incremental hasher. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // Adds a length-prefixed field, so that ("ab","c") and ("a","bc") hash differently.
  void UpdateField(absl::string_view bytes);
  // Finishes and returns 64 hex digits; the hasher must not be used afterwards.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string Sha256Hex(absl::string_view bytes);

}  // namespace icae

#endif  // ICAE_COMMON_BASE_SHA256_H_
