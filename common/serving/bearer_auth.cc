#include "common/serving/bearer_auth.h"

#include <openssl/crypto.h>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "common/base/sha256.h"
#include "common/serving/file_util.h"

namespace icae {

BearerAuth::BearerAuth(const std::string& token) : digest_(Sha256Hex(token)) {}

absl::StatusOr<std::unique_ptr<BearerAuth>> BearerAuth::FromFile(const std::string& path) {
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  if (!token.ok()) return token.status();
  return std::make_unique<BearerAuth>(*token);
}

absl::Status BearerAuth::Check(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  }
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("authorization metadata is not 'Bearer <token>'");
  }
  const std::string presented = Sha256Hex(value.substr(kScheme.size()));
  if (presented.size() != digest_.size() ||
      CRYPTO_memcmp(presented.data(), digest_.data(), digest_.size()) != 0) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return absl::OkStatus();
}

}  // namespace icae
