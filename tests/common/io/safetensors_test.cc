#include "common/io/safetensors.h"

#include <gtest/gtest.h>

#include "common/io/checkpoint.h"

namespace icae {
namespace {

TEST(SafetensorsSmokeTest, OpensGoldenModel) {
  auto file = SafetensorsFile::Open(std::string(ICAE_TESTDATA) + "/tiny-llama/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 21u);
  const TensorInfo* embed = (*file)->Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->shape, (std::vector<int64_t>{384, 64}));
}

}  // namespace
}  // namespace icae
