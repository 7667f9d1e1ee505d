// The model-only build (ICAE_MODEL_ONLY) has no SentencePiece: it says so instead of loading.
#include <gtest/gtest.h>

#include <fstream>

#include "common/io/tokenizer.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

TEST(TokenizerUnavailableTest, LoadSaysTheBuildHasNoTokenizer) {
  EXPECT_FALSE(Tokenizer::Available());
  testing::ScratchDir dir;
  std::ofstream(dir.Join("tokenizer.model")) << "not read";
  EXPECT_THAT(Tokenizer::Load(dir.Join("tokenizer.model")),
              testing::StatusIs(absl::StatusCode::kUnimplemented,
                                ::testing::HasSubstr("model-only build")));
  EXPECT_THAT(Tokenizer::LoadFromModelDir(dir.path()),
              testing::StatusIs(absl::StatusCode::kUnimplemented,
                                ::testing::HasSubstr("pass token ids")));
}

}  // namespace
}  // namespace icae
