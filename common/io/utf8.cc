#include "common/io/utf8.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace icae {
namespace {

// Number of bytes of a sequence starting with `lead`, or 0 if `lead` cannot start one.
int SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Checks the second byte's tighter range that rules out overlongs, surrogates and > U+10FFFF.
bool SecondByteOk(uint8_t lead, uint8_t second) {
  if (lead == 0xE0) return second >= 0xA0 && second <= 0xBF;
  if (lead == 0xED) return second >= 0x80 && second <= 0x9F;
  if (lead == 0xF0) return second >= 0x90 && second <= 0xBF;
  if (lead == 0xF4) return second >= 0x80 && second <= 0x8F;
  return IsContinuation(second);
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const int len = SequenceLength(s[i]);
    if (len == 0 || i + len > n) return false;
    if (len > 1 && !SecondByteOk(s[i], s[i + 1])) return false;
    for (int k = 2; k < len; ++k) {
      if (!IsContinuation(s[i + k])) return false;
    }
    i += len;
  }
  return true;
}

size_t CompleteUtf8Prefix(absl::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  // Look back at most 3 bytes for the start of a sequence that is cut off.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = s[n - back];
    if (IsContinuation(b)) continue;
    const int len = SequenceLength(b);
    if (len > static_cast<int>(back)) return n - back;
    return n;
  }
  return n;
}

std::string ClipForMessage(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  const absl::string_view head = text.substr(0, CompleteUtf8Prefix(text.substr(0, max_bytes)));
  return absl::StrCat(head, "... (", text.size(), " bytes)");
}

}  // namespace icae
