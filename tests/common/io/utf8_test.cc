// UTF-8 helpers against a naive reference decoder that works on code point values.
#include "common/io/utf8.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

namespace icae {
namespace {

// Naive strict decoder: decodes each sequence to its code point and checks the value range
// (shortest form, no surrogates, <= U+10FFFF), instead of the byte tables utf8.cc uses.
bool ReferenceValid(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t lead = static_cast<uint8_t>(s[i]);
    int len;
    uint32_t cp;
    if (lead < 0x80) {
      len = 1, cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      len = 2, cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      len = 3, cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      len = 4, cp = lead & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const uint8_t b = static_cast<uint8_t>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len]) return false;         // Overlong.
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // Surrogate.
    if (cp > 0x10FFFF) return false;                 // Beyond Unicode.
    i += len;
  }
  return true;
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(Utf8Test, KnownValidAndInvalid) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii \t\n"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"));
  EXPECT_TRUE(IsValidUtf8("\xef\xbf\xbf"));       // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));       // U+D7FF, just below the surrogates
  EXPECT_FALSE(IsValidUtf8("\x80"));              // Lone continuation.
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xe6\x97"));          // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f\x98"));      // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // Overlong NUL.
  EXPECT_FALSE(IsValidUtf8("\xc1\xbf"));          // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // Overlong '/'.
  EXPECT_FALSE(IsValidUtf8("\xf0\x8f\xbf\xbf"));  // Overlong U+FFFF.
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // U+D800 surrogate.
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));      // U+DFFF surrogate.
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000.
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("ok\xc3("));  // Bad continuation.
  EXPECT_FALSE(IsValidUtf8("\xe6\x97(x"));
}

// Every 1-, 2- and 3-byte string, and random 4..8-byte strings, agree with the reference.
TEST(Utf8Test, AgreesWithReferenceExhaustively) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s = Bytes({a});
    ASSERT_EQ(IsValidUtf8(s), ReferenceValid(s)) << a;
    for (int b = 0; b < 256; ++b) {
      s = Bytes({a, b});
      ASSERT_EQ(IsValidUtf8(s), ReferenceValid(s)) << a << " " << b;
    }
  }
  // 3-byte strings whose first byte is a lead byte of a multi-byte sequence (the rest is covered
  // by the 1- and 2-byte loops).
  for (int a = 0xC0; a < 0x100; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0; c < 256; ++c) {
        s = Bytes({a, b, c});
        ASSERT_EQ(IsValidUtf8(s), ReferenceValid(s)) << a << " " << b << " " << c;
      }
    }
  }
  std::mt19937 rng(7);
  // Bias toward bytes that matter: lead bytes, continuations, ASCII.
  const int kInteresting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                              0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
  int valid = 0;
  for (int round = 0; round < 200000; ++round) {
    s.clear();
    const int len = 4 + rng() % 5;
    for (int k = 0; k < len; ++k) {
      s.push_back(static_cast<char>(rng() % 2 ? kInteresting[rng() % 20] : rng() % 256));
    }
    ASSERT_EQ(IsValidUtf8(s), ReferenceValid(s)) << round;
    valid += ReferenceValid(s);
  }
  EXPECT_GT(valid, 1000);  // The sample holds both kinds.
}

TEST(Utf8Test, CompleteUtf8Prefix) {
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  const std::string e_acute = "\xc3\xa9";
  const std::string cjk = "\xe6\x97\xa5";
  const std::string emoji = "\xf0\x9f\x98\x80";
  EXPECT_EQ(CompleteUtf8Prefix("ab" + e_acute), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("ab" + e_acute.substr(0, 1)), 2u);
  EXPECT_EQ(CompleteUtf8Prefix(cjk), 3u);
  EXPECT_EQ(CompleteUtf8Prefix(cjk.substr(0, 1)), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("x" + cjk.substr(0, 2)), 1u);
  EXPECT_EQ(CompleteUtf8Prefix(emoji), 4u);
  for (size_t cut = 1; cut < 4; ++cut) {
    EXPECT_EQ(CompleteUtf8Prefix("hi " + emoji.substr(0, cut)), 3u) << cut;
  }
  // Streaming: feeding any prefix of a valid string yields a valid prefix, and the whole string
  // is emitted once complete.
  const std::string text = "a" + e_acute + cjk + emoji + "z" + emoji;
  for (size_t n = 0; n <= text.size(); ++n) {
    const size_t complete = CompleteUtf8Prefix(text.substr(0, n));
    EXPECT_LE(complete, n);
    EXPECT_GT(complete + 4, n);
    EXPECT_TRUE(IsValidUtf8(text.substr(0, complete))) << n;
  }
  EXPECT_EQ(CompleteUtf8Prefix(text), text.size());
  // Invalid bytes are not held back (they can never be completed).
  EXPECT_EQ(CompleteUtf8Prefix("ab\xff"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\x80"), 3u);
}

TEST(Utf8Test, ClipForMessageKeepsShortStringsAndCutsLongOnesAtACharacter) {
  EXPECT_EQ(ClipForMessage("ae"), "ae");
  EXPECT_EQ(ClipForMessage(std::string(80, 'x')), std::string(80, 'x'));
  EXPECT_EQ(ClipForMessage(std::string(8000, 'x')), std::string(80, 'x') + "... (8000 bytes)");
  // "\xc3\xa9" (e acute) straddles byte 4: the cut goes before it.
  EXPECT_EQ(ClipForMessage("abc\xc3\xa9"
                           "def",
                           4),
            "abc... (8 bytes)");
}

}  // namespace
}  // namespace icae
