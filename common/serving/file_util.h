// Small file helpers for the serving scaffolding (no dependency on common/io).
#ifndef ICAE_COMMON_SERVING_FILE_UTIL_H_
#define ICAE_COMMON_SERVING_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"

namespace icae {

// Whole file; NotFound / Internal name the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

// A bearer token file: its content with surrounding whitespace removed. InvalidArgument when it is
// empty or contains whitespace or control characters inside.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_FILE_UTIL_H_
