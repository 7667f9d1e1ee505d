// Malformed safetensors images, built by hand: each must fail with InvalidArgument naming the file
// (and the tensor when there is one), without reading outside the image (the sanitizer build
// checks that part).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/io/mapped_file.h"
#include "common/io/safetensors.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kName[] = "bad.safetensors";

std::string LittleEndian64(uint64_t value) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}

// 8-byte length + header + data; the length field is header.size() unless given.
std::string Image(const std::string& header, const std::string& data) {
  return LittleEndian64(header.size()) + header + data;
}

absl::Status Parse(const std::string& image) {
  return SafetensorsFile::FromBytes(image, kName).status();
}

// A one-tensor header "w" with the given fields (raw JSON text).
std::string OneTensor(const std::string& dtype, const std::string& shape,
                      const std::string& offsets) {
  return "{\"w\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets +
         "}}";
}

// InvalidArgument whose message names the file, tensor 'w' and `what`.
::testing::Matcher<absl::Status> BadTensorW(const std::string& what) {
  return StatusIs(absl::StatusCode::kInvalidArgument,
                  AllOf(HasSubstr(kName), HasSubstr("tensor 'w'"), HasSubstr(what)));
}
::testing::Matcher<absl::Status> BadFile(const std::string& what) {
  return StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(kName), HasSubstr(what)));
}

TEST(SafetensorsBadInputTest, WellFormedBaselineParses) {
  // The baseline the cases below break one field at a time.
  EXPECT_OK(Parse(Image(OneTensor("\"F32\"", "[2]", "[0,8]"), std::string(8, 'x'))));
  EXPECT_OK(Parse(Image("{}", "")));
  EXPECT_OK(Parse(Image("{}    ", "")));  // Trailing padding.
}

TEST(SafetensorsBadInputTest, Truncated) {
  EXPECT_THAT(Parse(""), BadFile("truncated: 0 bytes"));
  EXPECT_THAT(Parse(std::string(7, '\0')), BadFile("truncated: 7 bytes"));
  // Data area cut short: the tensor's range runs past the end.
  const std::string full = Image(OneTensor("\"F32\"", "[4]", "[0,16]"), std::string(16, 'x'));
  EXPECT_THAT(Parse(full.substr(0, full.size() - 1)),
              BadTensorW("data_offsets [0, 16] outside the data area of 15 bytes"));
  // Header cut short.
  EXPECT_THAT(Parse(full.substr(0, 20)), BadFile("runs past the end of the file (20 bytes)"));
}

TEST(SafetensorsBadInputTest, TruncatedFilesOnDisk) {
  ScratchDir dir;
  auto golden = ReadFileToString(std::string(ICAE_TESTDATA) + "/tiny-llama/model.safetensors");
  ASSERT_OK(golden);
  const std::string path = dir.Join(kName);
  // Cut inside the data area: the last tensor (model.norm.weight) no longer fits.
  ASSERT_OK(WriteStringToFile(path, golden->substr(0, golden->size() - 100)));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("tensor 'model.norm.weight'"),
                             HasSubstr("outside the data area"))));
  // Cut inside the header, inside the length field, and empty.
  for (size_t size : {size_t{1000}, size_t{5}, size_t{0}}) {
    ASSERT_OK(WriteStringToFile(path, golden->substr(0, size)));
    EXPECT_THAT(SafetensorsFile::Open(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)))
        << size;
  }
}

TEST(SafetensorsBadInputTest, HeaderLength) {
  // Past the end of the file.
  EXPECT_THAT(Parse(LittleEndian64(100) + "{}"),
              BadFile("header length 100 runs past the end of the file (10 bytes)"));
  // So large that 8 + N overflows uint64: rejected by the limit before any arithmetic.
  for (uint64_t length : {~uint64_t{0}, ~uint64_t{0} - 7, uint64_t{1} << 63}) {
    EXPECT_THAT(Parse(LittleEndian64(length) + "{}"), BadFile("exceeds the limit")) << length;
  }
  EXPECT_THAT(Parse(LittleEndian64(kMaxSafetensorsHeaderBytes + 1) + "{}"),
              BadFile("exceeds the limit of 100000000 bytes"));
  // Shorter than the JSON: the header is cut mid-object.
  const std::string header = OneTensor("\"F32\"", "[1]", "[0,4]");
  EXPECT_THAT(Parse(LittleEndian64(header.size() - 3) + header + "xxxx"),
              BadFile("header is not valid JSON"));
}

TEST(SafetensorsBadInputTest, InvalidJson) {
  for (const char* header : {"", "{", "{\"w\":", "not json", "{\"w\":{}}}", "\xff\xfe",
                             "{\"w\":{\"dtype\":\"F32\",}}"}) {
    EXPECT_THAT(Parse(Image(header, "")), BadFile("header is not valid JSON")) << header;
  }
  for (const char* header : {"[]", "[1,2]", "42", "\"str\"", "null"}) {
    EXPECT_THAT(Parse(Image(header, "")), BadFile("header is not a JSON object")) << header;
  }
  EXPECT_THAT(Parse(Image("{\"w\":[1,2]}", "")), BadTensorW("entry is not an object"));
  EXPECT_THAT(Parse(Image("{\"__metadata__\":[]}", "")), BadFile("__metadata__ is not an object"));
  EXPECT_THAT(Parse(Image("{\"__metadata__\":{\"k\":1}}", "")),
              BadFile("__metadata__ value of 'k' is not a string"));
}

// Deeply nested JSON must not exhaust the stack (parsing or destroying the DOM).
TEST(SafetensorsBadInputTest, DeepNesting) {
  const int kDepth = 200000;
  const std::string nested = std::string(kDepth, '[') + std::string(kDepth, ']');
  EXPECT_THAT(Parse(Image("{\"w\":" + nested + "}", "")), BadTensorW("entry is not an object"));
  EXPECT_THAT(Parse(Image("{\"__metadata__\":{\"k\":" + nested + "}}", "")),
              BadFile("is not a string"));
  EXPECT_THAT(Parse(Image(std::string(kDepth, '['), "")), BadFile("header is not valid JSON"));
}

TEST(SafetensorsBadInputTest, MissingFields) {
  const std::string data(4, 'x');
  EXPECT_THAT(Parse(Image("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", data)),
              BadTensorW("missing or non-string \"dtype\""));
  EXPECT_THAT(Parse(Image("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", data)),
              BadTensorW("missing or non-array \"shape\""));
  EXPECT_THAT(Parse(Image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", data)),
              BadTensorW("\"data_offsets\" must be [begin, end]"));
}

TEST(SafetensorsBadInputTest, UnknownDtype) {
  const std::string data(8, 'x');
  for (const char* dtype : {"\"F64\"", "\"U8\"", "\"BOOL\"", "\"f32\"", "\"\"", "\"F8_E4M3\""}) {
    EXPECT_THAT(Parse(Image(OneTensor(dtype, "[1]", "[0,8]"), data)),
                BadTensorW("unsupported dtype"))
        << dtype;
  }
  EXPECT_THAT(Parse(Image(OneTensor("\"F64\"", "[1]", "[0,8]"), data)),
              BadTensorW("unsupported dtype 'F64'"));
  EXPECT_THAT(Parse(Image(OneTensor("4", "[1]", "[0,4]"), data)),
              BadTensorW("missing or non-string \"dtype\""));
}

TEST(SafetensorsBadInputTest, BadShapes) {
  const std::string data(8, 'x');
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[-2]", "[0,8]"), data)),
              BadTensorW("negative dimension -2"));
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[2,-1]", "[0,8]"), data)),
              BadTensorW("negative dimension -1"));
  for (const char* shape : {"[2.0]", "[1.5]", "[\"2\"]", "[true]", "[null]", "[[2]]"}) {
    EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", shape, "[0,8]"), data)),
                BadTensorW("shape holds a non-integer"))
        << shape;
  }
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "2", "[0,8]"), data)),
              BadTensorW("missing or non-array \"shape\""));
  // Dimension above int64, and products that overflow int64 (elements or bytes).
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[9223372036854775808]", "[0,8]"), data)),
              BadTensorW("dimension too large"));
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[4294967296,4294967296]", "[0,8]"), data)),
              BadTensorW("element count overflows"));
  EXPECT_THAT(Parse(Image(OneTensor("\"I64\"", "[2305843009213693952]", "[0,8]"), data)),
              BadTensorW("element count overflows"));
}

TEST(SafetensorsBadInputTest, BadOffsets) {
  const std::string data(8, 'x');
  // Wrong arity or type.
  for (const char* offsets : {"[]", "[0]", "[0,4,8]", "{}", "8", "null"}) {
    EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[2]", offsets), data)),
                BadTensorW("\"data_offsets\" must be [begin, end]"))
        << offsets;
  }
  for (const char* offsets : {"[-1,7]", "[0,8.0]", "[\"0\",\"8\"]", "[0,null]", "[[0],[8]]"}) {
    EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[2]", offsets), data)),
                BadTensorW("data_offsets must be non-negative integers"))
        << offsets;
  }
  // Outside the data area (including values near 2^64, which must not wrap).
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[2]", "[8,16]"), data)),
              BadTensorW("data_offsets [8, 16] outside the data area of 8 bytes"));
  EXPECT_THAT(
      Parse(
          Image(OneTensor("\"F32\"", "[2]", "[18446744073709551608,18446744073709551615]"), data)),
      BadTensorW("outside the data area"));
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[0]", "[9,9]"), data)),
              BadTensorW("outside the data area"));
  // Misordered: end before begin.
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[2]", "[8,0]"), data)),
              BadTensorW("misordered data_offsets [8, 0]"));
}

TEST(SafetensorsBadInputTest, ShapeSizeMismatch) {
  const std::string data(16, 'x');
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[3]", "[0,8]"), data)),
              BadTensorW("shape [3] of F32 needs 12 bytes but data_offsets hold 8"));
  EXPECT_THAT(Parse(Image(OneTensor("\"BF16\"", "[2,2]", "[0,16]"), data)),
              BadTensorW("shape [2,2] of BF16 needs 8 bytes but data_offsets hold 16"));
  EXPECT_THAT(Parse(Image(OneTensor("\"I64\"", "[]", "[0,4]"), data)),
              BadTensorW("needs 8 bytes but data_offsets hold 4"));
  EXPECT_THAT(Parse(Image(OneTensor("\"F32\"", "[0]", "[0,4]"), data)),
              BadTensorW("needs 0 bytes but data_offsets hold 4"));
}

TEST(SafetensorsBadInputTest, OverlappingOffsets) {
  const std::string data(16, 'x');
  const std::string header =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  EXPECT_THAT(Parse(Image(header, data)),
              BadTensorW("data_offsets [4, 12] overlap tensor 'a' [0, 8]"));
  // Same range twice; and a zero-size tensor strictly inside another.
  const std::string same =
      "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  EXPECT_THAT(Parse(Image(same, data)), BadFile("overlap tensor"));
  const std::string inside =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}";
  EXPECT_THAT(Parse(Image(inside, data)), BadTensorW("overlap tensor 'a' [0, 16]"));
}

TEST(SafetensorsBadInputTest, DuplicateNames) {
  const std::string data(8, 'x');
  const std::string header =
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
  EXPECT_THAT(Parse(Image(header, data)), BadFile("duplicate name 'w' in header"));
  // Two __metadata__ blocks, and a duplicate key inside one entry.
  EXPECT_THAT(Parse(Image("{\"__metadata__\":{},\"__metadata__\":{}}", "")),
              BadFile("duplicate name '__metadata__'"));
  EXPECT_THAT(Parse(Image("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                          "\"data_offsets\":[0,4]}}",
                          data)),
              BadFile("duplicate name 'dtype'"));
  // The same key in sibling objects is not a duplicate.
  EXPECT_OK(
      Parse(Image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  data)));
}

TEST(SafetensorsBadInputTest, ZeroSizeTensorsAreValid) {
  const std::string header =
      "{\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
      "\"z2\":{\"dtype\":\"I64\",\"shape\":[3,0,2],\"data_offsets\":[0,0]},"
      "\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
      "\"z3\":{\"dtype\":\"BF16\",\"shape\":[0,2305843009213693952],\"data_offsets\":[4,4]}}";
  auto file = SafetensorsFile::FromBytes(Image(header, "abcd"), kName);
  ASSERT_OK(file);
  ASSERT_EQ((*file)->tensors().size(), 4u);
  for (const char* name : {"z1", "z2", "z3"}) {
    const TensorInfo* info = (*file)->Find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->numel, 0);
    EXPECT_TRUE((*file)->Bytes(*info).empty());
  }
  EXPECT_EQ((*file)->Find("z2")->shape, (std::vector<int64_t>{3, 0, 2}));
  absl::Span<const uint8_t> w = (*file)->Bytes(*(*file)->Find("w"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(w.data()), w.size()), "abcd");
  // Zero elements, but the other dimension's bytes (2^62 x 2) overflow int64: no allocator
  // could make that shape, so it is refused like any overflow.
  EXPECT_THAT(SafetensorsFile::FromBytes(
                  Image("{\"z\":{\"dtype\":\"BF16\",\"shape\":[0,4611686018427387904],"
                        "\"data_offsets\":[0,0]}}",
                        ""),
                  kName)
                  .status(),
              BadFile("element count overflows"));
}

}  // namespace
}  // namespace icae
