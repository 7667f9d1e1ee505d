#include "common/base/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace icae {
namespace {

// Known answers from FIPS 180-2 (appendix B) and the NIST example vectors.
TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (size_t split = 0; split <= text.size(); ++split) {
    Sha256 hasher;
    hasher.Update(text.substr(0, split));
    hasher.Update(text.data() + split, text.size() - split);
    EXPECT_EQ(hasher.HexDigest(),
              "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592");
  }
}

TEST(Sha256Test, FieldsAreLengthPrefixed) {
  const auto fields = [](const std::string& a, const std::string& b) {
    Sha256 hasher;
    hasher.UpdateField(a);
    hasher.UpdateField(b);
    return hasher.HexDigest();
  };
  EXPECT_NE(fields("ab", "c"), fields("a", "bc"));
  EXPECT_EQ(fields("ab", "c"), fields("ab", "c"));
  // The prefix is the 8-byte little-endian length.
  Sha256 manual;
  manual.Update(std::string("\x02\0\0\0\0\0\0\0ab", 10));
  Sha256 field;
  field.UpdateField("ab");
  EXPECT_EQ(field.HexDigest(), manual.HexDigest());
}

}  // namespace
}  // namespace icae
