// UTF-8 validation and boundary helpers (for request text and streamed output).
#ifndef ICAE_COMMON_IO_UTF8_H_
#define ICAE_COMMON_IO_UTF8_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace icae {

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(absl::string_view text);
// Length of the longest prefix of `text` that does not end inside a multi-byte sequence
// (the rest may be completed by later bytes). Used to stream only whole characters.
size_t CompleteUtf8Prefix(absl::string_view text);
// A client's string for an error message: itself when at most `max_bytes` long, else its first
// max_bytes (cut before a partial character) then "... (N bytes)". Errors that echo client input
// stay small (gRPC's default metadata limit, 8 KiB, would otherwise replace the real error).
std::string ClipForMessage(absl::string_view text, size_t max_bytes = 80);

}  // namespace icae

#endif  // ICAE_COMMON_IO_UTF8_H_
