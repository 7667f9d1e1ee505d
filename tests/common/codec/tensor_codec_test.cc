// Tensor codec: bit-exact round trips for every DataType, wire dtype conversion against
// at::Tensor::to, and every decode failure.
#include "common/codec/tensor_codec.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kLimit = int64_t{1} << 30;
constexpr v1::DataType kAllWire[] = {v1::FLOAT32, v1::FLOAT16, v1::BFLOAT16, v1::INT32, v1::INT64};
// INT8 is quantized (a scale per row), not bit-exact: TensorCodecInt8Test.

std::string RawBytes(const at::Tensor& tensor) {
  at::Tensor t = tensor.contiguous();
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
}

// A tensor of `type` whose bytes are random, so float tensors hold NaNs with payloads, infinities,
// subnormals and both zeros along with ordinary values.
at::Tensor RandomBits(at::ScalarType type, at::IntArrayRef shape, uint32_t seed) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  std::mt19937 rng(seed);
  auto* bytes = static_cast<uint8_t*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel() * t.element_size(); ++i) bytes[i] = rng() & 0xff;
  return t;
}

v1::Tensor Proto(v1::DataType dtype, std::vector<int64_t> shape, std::string data) {
  v1::Tensor proto;
  proto.set_dtype(dtype);
  for (int64_t d : shape) proto.add_shape(d);
  proto.set_data(std::move(data));
  return proto;
}

TEST(TensorCodecTest, DataTypeMappings) {
  for (v1::DataType wire : kAllWire) {
    std::optional<DType> dtype = FromProtoDataType(wire);
    ASSERT_TRUE(dtype.has_value());
    EXPECT_EQ(ToProtoDataType(*dtype), wire);
    EXPECT_EQ(FromScalarType(ToScalarType(*dtype)), dtype);
    EXPECT_EQ(static_cast<size_t>(c10::elementSize(ToScalarType(*dtype))), ItemSize(*dtype));
  }
  EXPECT_FALSE(FromProtoDataType(v1::DATA_TYPE_UNSPECIFIED).has_value());
  EXPECT_FALSE(FromProtoDataType(static_cast<v1::DataType>(99)).has_value());
  EXPECT_FALSE(FromScalarType(at::kDouble).has_value());
  EXPECT_FALSE(FromScalarType(at::kBool).has_value());
}

TEST(TensorCodecTest, RoundTripIsBitExactForEveryDataType) {
  uint32_t seed = 1;
  for (v1::DataType wire : kAllWire) {
    const at::ScalarType type = ToScalarType(*FromProtoDataType(wire));
    at::Tensor original = RandomBits(type, {3, 5, 7}, seed++);
    v1::Tensor proto;
    ASSERT_OK(EncodeTensor(original, wire, &proto));
    EXPECT_EQ(proto.dtype(), wire);
    EXPECT_THAT(proto.shape(), ::testing::ElementsAre(3, 5, 7));
    EXPECT_TRUE(proto.data() == RawBytes(original)) << v1::DataType_Name(wire);
    auto decoded = DecodeTensor(proto, kLimit);
    ASSERT_OK(decoded);
    EXPECT_EQ(decoded->scalar_type(), type);
    EXPECT_EQ(decoded->sizes(), original.sizes());
    EXPECT_TRUE(decoded->is_contiguous());
    EXPECT_TRUE(RawBytes(*decoded) == RawBytes(original)) << v1::DataType_Name(wire);
  }
}

TEST(TensorCodecTest, SpecialFloatValuesSurvive) {
  const uint32_t kBits[] = {
      0x7fc00000u,  // quiet NaN
      0x7fa12345u,  // signalling NaN with a payload
      0xffc0beefu,  // negative NaN with a payload
      0x80000000u,  // -0.0
      0x00000001u,  // smallest subnormal
      0x807fffffu,  // largest negative subnormal
      0x7f800000u,  // +inf
      0xff800000u,  // -inf
      0x7f7fffffu,  // largest finite
  };
  at::Tensor f32 = at::empty({9}, at::kFloat);
  std::memcpy(f32.data_ptr(), kBits, sizeof(kBits));
  v1::Tensor proto;
  ASSERT_OK(EncodeTensor(f32, v1::FLOAT32, &proto));
  auto back = DecodeTensor(proto, kLimit);
  ASSERT_OK(back);
  EXPECT_EQ(std::memcmp(back->data_ptr(), kBits, sizeof(kBits)), 0);

  // Half-precision NaN payloads, -0 and subnormals.
  const uint16_t kHalf[] = {0x7e01, 0xfd55, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00};
  for (at::ScalarType type : {at::kHalf, at::kBFloat16}) {
    at::Tensor t = at::empty({7}, type);
    std::memcpy(t.data_ptr(), kHalf, sizeof(kHalf));
    ASSERT_OK(EncodeTensor(t, ToProtoDataType(*FromScalarType(type)), &proto));
    auto decoded = DecodeTensor(proto, kLimit);
    ASSERT_OK(decoded);
    EXPECT_EQ(std::memcmp(decoded->data_ptr(), kHalf, sizeof(kHalf)), 0);
  }
}

TEST(TensorCodecTest, NonContiguousInput) {
  at::Tensor base = RandomBits(at::kFloat, {6, 8}, 11);
  const at::Tensor views[] = {
      base.t(),                             // transposed
      base.slice(1, 1, 8, 3),               // strided columns
      base.select(1, 2),                    // one column
      base.unsqueeze(0).expand({3, 6, 8}),  // broadcast (stride 0)
      base.slice(0, 2, 5).permute({1, 0}),
  };
  for (const at::Tensor& view : views) {
    ASSERT_FALSE(view.is_contiguous());
    for (v1::DataType wire : {v1::FLOAT32, v1::BFLOAT16}) {
      v1::Tensor proto;
      ASSERT_OK(EncodeTensor(view, wire, &proto));
      const at::Tensor expected = view.to(ToScalarType(*FromProtoDataType(wire))).contiguous();
      EXPECT_TRUE(proto.data() == RawBytes(expected)) << view.sizes();
      auto decoded = DecodeTensor(proto, kLimit);
      ASSERT_OK(decoded);
      EXPECT_EQ(decoded->sizes(), view.sizes());
      EXPECT_TRUE(RawBytes(*decoded) == RawBytes(expected));
    }
  }
}

// Encoding to another wire dtype gives exactly what at::Tensor::to gives.
TEST(TensorCodecTest, WireDtypeConversionMatchesTo) {
  at::Tensor f32 = at::randn({4, 33}, at::TensorOptions().dtype(at::kFloat)) * 1000;
  auto values = f32.accessor<float, 2>();
  values[0][0] = std::numeric_limits<float>::quiet_NaN();
  values[0][1] = -0.0f;
  values[0][2] = 1e-40f;       // subnormal in f32, zero in f16, subnormal in bf16
  values[0][3] = 70000.0f;     // overflows f16 to inf
  values[0][4] = 1.00390625f;  // a bf16 rounding tie
  struct Case {
    at::Tensor source;
    v1::DataType wire;
  } cases[] = {
      {f32, v1::BFLOAT16},
      {f32, v1::FLOAT16},
      {f32.to(at::kBFloat16), v1::FLOAT32},
      {f32.to(at::kHalf), v1::FLOAT32},
      {at::arange(-50, 50, at::kLong), v1::INT32},
      {at::arange(-50, 50, at::kInt), v1::INT64},
      {at::arange(-50, 50, at::kInt), v1::FLOAT32},
  };
  for (const Case& c : cases) {
    v1::Tensor proto;
    ASSERT_OK(EncodeTensor(c.source, c.wire, &proto));
    EXPECT_EQ(proto.dtype(), c.wire);
    const at::Tensor expected = c.source.to(ToScalarType(*FromProtoDataType(c.wire)));
    EXPECT_TRUE(proto.data() == RawBytes(expected))
        << c.source.scalar_type() << " -> " << v1::DataType_Name(c.wire);
    auto decoded = DecodeTensor(proto, kLimit);
    ASSERT_OK(decoded);
    EXPECT_EQ(decoded->scalar_type(), expected.scalar_type());
    EXPECT_TRUE(RawBytes(*decoded) == RawBytes(expected));
  }
}

TEST(TensorCodecTest, EmptyTensorsAndScalars) {
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{0}, std::vector<int64_t>{2, 0, 3}, std::vector<int64_t>{0, 0}}) {
    v1::Tensor proto;
    ASSERT_OK(EncodeTensor(at::empty(shape, at::kFloat), v1::BFLOAT16, &proto));
    EXPECT_TRUE(proto.data().empty());
    EXPECT_EQ(proto.shape_size(), static_cast<int>(shape.size()));
    auto decoded = DecodeTensor(proto, kLimit);
    ASSERT_OK(decoded);
    EXPECT_EQ(decoded->sizes(), at::IntArrayRef(shape));
    EXPECT_EQ(decoded->numel(), 0);
  }
  // A zero dimension makes the element count 0 whatever the other dimensions are.
  auto huge_empty = DecodeTensor(Proto(v1::FLOAT32, {0, int64_t{1} << 40}, ""), 10);
  ASSERT_OK(huge_empty);
  EXPECT_EQ(huge_empty->numel(), 0);

  // A scalar: empty shape, one element.
  at::Tensor scalar = at::scalar_tensor(-2.5, at::kFloat);
  v1::Tensor proto;
  ASSERT_OK(EncodeTensor(scalar, v1::FLOAT32, &proto));
  EXPECT_EQ(proto.shape_size(), 0);
  EXPECT_EQ(proto.data().size(), 4u);
  auto decoded = DecodeTensor(proto, kLimit);
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->dim(), 0);
  EXPECT_EQ(decoded->item<float>(), -2.5f);
  // The element limit applies to scalars too.
  EXPECT_THAT(DecodeTensor(proto, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds the limit of 0")));
}

TEST(TensorCodecTest, EncodeErrors) {
  v1::Tensor proto;
  const at::Tensor t = at::ones({2}, at::kFloat);
  EXPECT_THAT(EncodeTensor(t, v1::DATA_TYPE_UNSPECIFIED, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unsupported wire dtype DATA_TYPE_UNSPECIFIED")));
  EXPECT_THAT(EncodeTensor(t, static_cast<v1::DataType>(77), &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported wire dtype 77")));
  EXPECT_THAT(EncodeTensor(at::ones({2}, at::kDouble), v1::FLOAT32, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype Double")));
  EXPECT_THAT(EncodeTensor(at::ones({2}, at::kBool), v1::INT32, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype Bool")));
  EXPECT_THAT(EncodeTensor(at::Tensor(), v1::FLOAT32, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("undefined")));
  const at::Tensor sparse = at::ones({2, 2}, at::kFloat).to_sparse();
  EXPECT_THAT(EncodeTensor(sparse, v1::FLOAT32, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strided")));
}

TEST(TensorCodecTest, DecodeErrors) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  // Unknown dtype: unset, and a value outside the enum (proto3 keeps unknown enum values).
  EXPECT_THAT(
      DecodeTensor(Proto(v1::DATA_TYPE_UNSPECIFIED, {1}, "abcd"), kLimit),
      StatusIs(kInvalid, HasSubstr("tensor dtype 0 (DATA_TYPE_UNSPECIFIED) is not supported")));
  EXPECT_THAT(DecodeTensor(Proto(static_cast<v1::DataType>(42), {1}, "abcd"), kLimit),
              StatusIs(kInvalid, HasSubstr("tensor dtype 42 (unknown) is not supported")));
  EXPECT_THAT(DecodeTensor(Proto(static_cast<v1::DataType>(-3), {1}, "abcd"), kLimit),
              StatusIs(kInvalid, HasSubstr("tensor dtype -3 (unknown)")));
  // An unknown value arriving over the wire, parsed from bytes: field 1 (varint) = 9.
  v1::Tensor parsed;
  ASSERT_TRUE(
      parsed.ParseFromString(std::string("\x08\x09\x12\x01\x01\x1a\x04"
                                         "abcd",
                                         11)));
  EXPECT_EQ(static_cast<int>(parsed.dtype()), 9);
  EXPECT_THAT(DecodeTensor(parsed, kLimit), StatusIs(kInvalid, HasSubstr("tensor dtype 9")));

  // Negative dimensions, even where the product would be positive or zero.
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {2, -1}, ""), kLimit),
              StatusIs(kInvalid, HasSubstr("tensor shape [2,-1]: dimension 1 is negative")));
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {-2, -2}, std::string(16, 'x')), kLimit),
              StatusIs(kInvalid, HasSubstr("dimension 0 is negative")));
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {0, -5}, ""), kLimit),
              StatusIs(kInvalid, HasSubstr("dimension 1 is negative")));

  // Element count (or byte size) overflowing int64, including products that wrap to small values.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{kMax, 2}, std::vector<int64_t>{1LL << 32, 1LL << 32},
        std::vector<int64_t>{1LL << 62, 4},  // wraps to 0
        std::vector<int64_t>{1LL << 61}}) {  // 2^61 * 4 bytes
    EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, shape, "abcd"), kMax),
                StatusIs(kInvalid, HasSubstr("overflows int64")));
  }

  // The caller's element limit.
  EXPECT_THAT(DecodeTensor(Proto(v1::INT64, {4, 4}, std::string(128, 'x')), 15),
              StatusIs(kInvalid, HasSubstr("tensor of 16 elements exceeds the limit of 15")));
  EXPECT_OK(DecodeTensor(Proto(v1::INT64, {4, 4}, std::string(128, 'x')), 16));
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {1LL << 40}, ""), kLimit),
              StatusIs(kInvalid, HasSubstr("exceeds the limit")));

  // A zero dimension does not hide an overflowing product of the others (found by
  // fuzz_tensor_codec: the allocator multiplied them and failed with INTERNAL).
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {2415264251659533174LL, 66, 0, 24}, ""), kLimit),
              StatusIs(kInvalid, HasSubstr("overflows int64")));
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {int64_t{1} << 62, 0}, ""), kMax),
              StatusIs(kInvalid, HasSubstr("overflows int64")));  // 2^64 bytes.
  // At most kMaxTensorRank dimensions.
  EXPECT_OK(DecodeTensor(Proto(v1::FLOAT32, std::vector<int64_t>(kMaxTensorRank, 1), "abcd"),
                         kLimit));
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, std::vector<int64_t>(kMaxTensorRank + 1, 1), "abcd"),
                           kLimit),
              StatusIs(kInvalid, HasSubstr("tensor rank 9 exceeds the limit of 8")));

  // Byte length mismatch, both ways.
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {2, 3}, std::string(23, 'x')), kLimit),
              StatusIs(kInvalid, AllOf(HasSubstr("tensor data holds 23 bytes"),
                                       HasSubstr("shape [2,3] of float32 needs 24"))));
  EXPECT_THAT(DecodeTensor(Proto(v1::FLOAT32, {2, 3}, std::string(25, 'x')), kLimit),
              StatusIs(kInvalid, HasSubstr("tensor data holds 25 bytes")));
  EXPECT_THAT(DecodeTensor(Proto(v1::BFLOAT16, {}, ""), kLimit),
              StatusIs(kInvalid, HasSubstr("holds 0 bytes; shape [] of bfloat16 needs 2")));
  EXPECT_THAT(DecodeTensor(Proto(v1::INT32, {0}, "x"), kLimit),
              StatusIs(kInvalid, HasSubstr("needs 0")));
}

// INT8: the naive per-row reference, element by element.
struct Int8Reference {
  std::vector<int8_t> q;
  std::vector<float> scales;
};
Int8Reference QuantizeNaive(const at::Tensor& x2d) {
  at::Tensor x = x2d.to(at::kFloat).contiguous();
  const int64_t rows = x.size(0), width = x.size(1);
  const float* p = x.data_ptr<float>();
  Int8Reference out;
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < width; ++c) amax = std::max(amax, std::fabs(p[r * width + c]));
    const float scale = amax / 127.0f;
    out.scales.push_back(scale);
    for (int64_t c = 0; c < width; ++c) {
      const float v = scale > 0 ? std::nearbyint(p[r * width + c] * (1.0f / scale)) : 0.0f;
      out.q.push_back(static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v))));
    }
  }
  return out;
}

TEST(TensorCodecInt8Test, MatchesTheNaiveReferenceAndBoundsTheError) {
  for (at::ScalarType type : {at::kFloat, at::kBFloat16, at::kHalf}) {
    at::Tensor x = at::randn({6, 33}, at::TensorOptions().dtype(at::kFloat)).mul_(3).to(type);
    x[2].zero_();  // a row of zeros: scale 0, all q 0
    v1::Tensor proto;
    ASSERT_OK(EncodeTensor(x, v1::INT8, &proto));
    EXPECT_EQ(proto.dtype(), v1::INT8);
    EXPECT_THAT(proto.shape(), ::testing::ElementsAre(6, 33));
    ASSERT_EQ(proto.data().size(), 6u * 33u);
    EXPECT_EQ(proto.scale().dtype(), v1::FLOAT32);
    EXPECT_THAT(proto.scale().shape(), ::testing::ElementsAre(6));
    const Int8Reference ref = QuantizeNaive(x);
    std::vector<float> scales(6);
    std::memcpy(scales.data(), proto.scale().data().data(), 6 * sizeof(float));
    for (int r = 0; r < 6; ++r) EXPECT_FLOAT_EQ(scales[r], ref.scales[r]) << r;
    int differing = 0;
    for (size_t i = 0; i < ref.q.size(); ++i) {
      const int got = static_cast<int8_t>(proto.data()[i]);
      // x * (1/scale) vs x / scale may round one step apart at a tie: at most 1.
      EXPECT_LE(std::abs(got - ref.q[i]), 1) << i;
      differing += got != ref.q[i];
    }
    EXPECT_LE(differing, 2);
    EXPECT_EQ(scales[2], 0.0f);

    absl::StatusOr<at::Tensor> decoded = DecodeTensor(proto, kLimit);
    ASSERT_OK(decoded);
    EXPECT_EQ(decoded->scalar_type(), at::kFloat);
    EXPECT_EQ(decoded->sizes(), x.sizes());
    const at::Tensor err = (decoded->sub(x.to(at::kFloat))).abs();
    for (int r = 0; r < 6; ++r) {
      // Half a quantization step, plus float slack.
      EXPECT_LE(err[r].max().item<float>(), scales[r] * 0.5f * 1.001f + 1e-7f) << r;
    }
  }
}

TEST(TensorCodecInt8Test, HigherRankUsesTheLastDimensionAsRowsAndWriteWireElementsAgrees) {
  at::Tensor x = at::randn({2, 3, 8});
  v1::Tensor proto;
  ASSERT_OK(EncodeTensor(x.transpose(0, 1).contiguous().transpose(0, 1), v1::INT8, &proto));
  EXPECT_THAT(proto.scale().shape(), ::testing::ElementsAre(2, 3));
  std::string data(48, '\0');
  std::vector<float> scales(6);
  ASSERT_OK(WriteWireElements(x, DType::kInt8, data.data(), scales.data()));
  EXPECT_TRUE(data == proto.data());
  EXPECT_EQ(std::memcmp(scales.data(), proto.scale().data().data(), 24), 0);
  ASSERT_OK(DecodeTensor(proto, kLimit));

  // Not floating, or a scalar: nothing to quantize.
  EXPECT_THAT(EncodeTensor(at::ones({2, 2}, at::kInt), v1::INT8, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("floating tensor")));
  EXPECT_THAT(EncodeTensor(at::ones({}), v1::INT8, &proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank >= 1")));
  // Empty rows and zero width.
  ASSERT_OK(EncodeTensor(at::ones({0, 4}), v1::INT8, &proto));
  ASSERT_OK(DecodeTensor(proto, kLimit));
  ASSERT_OK(EncodeTensor(at::ones({3, 0}), v1::INT8, &proto));
  EXPECT_EQ(proto.scale().data().size(), 12u);
  ASSERT_OK(DecodeTensor(proto, kLimit));
}

TEST(TensorCodecInt8Test, NonFiniteRowsAreRefusedNotHidden) {
  at::Tensor x = at::randn({3, 16});
  x[1][5] = std::numeric_limits<float>::quiet_NaN();
  x[2][0] = -std::numeric_limits<float>::infinity();
  v1::Tensor proto;
  ASSERT_OK(EncodeTensor(x, v1::INT8, &proto));
  std::vector<float> scales(3);
  std::memcpy(scales.data(), proto.scale().data().data(), 12);
  EXPECT_TRUE(std::isfinite(scales[0]));
  EXPECT_TRUE(std::isnan(scales[1]));
  EXPECT_TRUE(std::isnan(scales[2]));
  EXPECT_THAT(DecodeTensor(proto, kLimit),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-finite")));
}

TEST(TensorCodecInt8Test, DecodeErrors) {
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  v1::Tensor good;
  ASSERT_OK(EncodeTensor(at::randn({2, 4}), v1::INT8, &good));
  ASSERT_OK(DecodeTensor(good, kLimit));

  v1::Tensor t = good;
  t.clear_scale();
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("got none")));
  t = good;
  t.mutable_scale()->set_dtype(v1::BFLOAT16);
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("FLOAT32 scale of shape [2]")));
  t = good;
  t.mutable_scale()->add_shape(1);
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("got FLOAT32 [2,1]")));
  t = good;
  t.mutable_scale()->mutable_data()->pop_back();
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("scale holds 7 bytes")));
  for (float bad : {-1.0f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    t = good;
    std::memcpy(t.mutable_scale()->mutable_data()->data() + 4, &bad, 4);
    EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("non-finite")));
  }
  t = good;
  (*t.mutable_data())[5] = static_cast<char>(-128);
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("-128")));
  // A scalar INT8, a scale on a float tensor, rows beyond the limit with no bytes at all.
  EXPECT_THAT(DecodeTensor(Proto(v1::INT8, {}, "x"), kLimit), StatusIs(kInvalid, HasSubstr("rank >= 1")));
  t = Proto(v1::FLOAT32, {1}, "abcd");
  *t.mutable_scale() = good.scale();
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("only INT8")));
  t = Proto(v1::INT8, {int64_t{1} << 62, 0}, "");
  t.mutable_scale()->set_dtype(v1::FLOAT32);
  t.mutable_scale()->add_shape(int64_t{1} << 62);
  EXPECT_THAT(DecodeTensor(t, kLimit), StatusIs(kInvalid, HasSubstr("rows, more than the limit")));
}

}  // namespace
}  // namespace icae
