#include "common/base/dtype.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace icae {
namespace {

constexpr DType kAll[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt32,
                          DType::kInt64};

TEST(DTypeTest, NamesRoundTrip) {
  for (DType dtype : kAll) {
    EXPECT_EQ(DTypeFromSafetensorsName(SafetensorsName(dtype)), dtype);
    EXPECT_EQ(DTypeFromName(DTypeName(dtype)), dtype);
  }
  EXPECT_EQ(SafetensorsName(DType::kBFloat16), "BF16");
  EXPECT_EQ(DTypeName(DType::kFloat16), "float16");
  EXPECT_EQ(DTypeFromName("bf16"), DType::kBFloat16);
  EXPECT_EQ(DTypeFromName("fp32"), DType::kFloat32);
  EXPECT_EQ(DTypeFromName("float64"), std::nullopt);
  EXPECT_EQ(DTypeFromSafetensorsName("F64"), std::nullopt);
  EXPECT_EQ(DTypeFromSafetensorsName("bf16"), std::nullopt);  // Safetensors names are upper case.
  EXPECT_EQ(ItemSize(DType::kFloat32), 4u);
  EXPECT_EQ(ItemSize(DType::kBFloat16), 2u);
  EXPECT_EQ(ItemSize(DType::kInt64), 8u);
  EXPECT_TRUE(IsFloating(DType::kFloat16));
  EXPECT_FALSE(IsFloating(DType::kInt32));
}

std::optional<int64_t> Numel(std::vector<int64_t> shape, size_t item_size = 1) {
  return CheckedNumel(shape.data(), shape.size(), item_size);
}

TEST(DTypeTest, CheckedNumel) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(Numel({}), 1);
  EXPECT_EQ(Numel({2, 3, 4}), 24);
  EXPECT_EQ(Numel({0}), 0);
  EXPECT_EQ(Numel({kMax, 0}), 0);  // A zero dimension makes the count 0 ...
  EXPECT_EQ(Numel({kMax, 2, 0}), std::nullopt);  // ... but the other dimensions must still fit.
  EXPECT_EQ(Numel({int64_t{1} << 62, 0}, 4), std::nullopt);  // In bytes too.
  EXPECT_EQ(Numel({-1}), std::nullopt);
  EXPECT_EQ(Numel({0, -1}), std::nullopt);  // Negative even when another dimension is zero.
  EXPECT_EQ(Numel({kMax}), kMax);
  EXPECT_EQ(Numel({kMax}, 2), std::nullopt);  // Bytes overflow.
  EXPECT_EQ(Numel({int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
  EXPECT_EQ(Numel({int64_t{1} << 31, int64_t{1} << 31}, 2), std::nullopt);  // 2^63 bytes.
  EXPECT_EQ(Numel({int64_t{1} << 31, int64_t{1} << 30}, 4), std::nullopt);
  EXPECT_EQ(Numel({int64_t{1} << 31, int64_t{1} << 30}, 2), int64_t{1} << 61);
  EXPECT_EQ(Numel({int64_t{1} << 30, int64_t{1} << 30}, 4), int64_t{1} << 60);
  EXPECT_EQ(Numel({int64_t{1} << 32, int64_t{1} << 32}), std::nullopt);
  EXPECT_EQ(Numel({3, 3074457345618258603}), std::nullopt);  // Just past int64.
  EXPECT_EQ(Numel({3, 3074457345618258602}), 9223372036854775806);
}

}  // namespace
}  // namespace icae
