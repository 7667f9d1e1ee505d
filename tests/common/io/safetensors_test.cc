// Safetensors reader on the golden fixtures, zero-copy mapping, and the writer's round trips.
// Malformed files are covered by safetensors_bad_input_test.cc, sharded checkpoints by
// checkpoint_test.cc.
#include "common/io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/io/mapped_file.h"
#include "common/io/safetensors_writer.h"
#include "nlohmann/json.hpp"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Golden(const std::string& relative) {
  return std::string(ICAE_TESTDATA) + "/" + relative;
}

std::shared_ptr<const SafetensorsFile> OpenOrDie(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  EXPECT_OK(file);
  return file.ok() ? *file : nullptr;
}

template <typename T>
std::vector<T> Values(const SafetensorsFile& file, const TensorInfo& info) {
  absl::Span<const uint8_t> bytes = file.Bytes(info);
  std::vector<T> out(bytes.size() / sizeof(T));
  EXPECT_EQ(out.size() * sizeof(T), bytes.size());
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

std::string AsString(absl::Span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// float32 -> bfloat16 with round-to-nearest-even (what torch's .to(bfloat16) does).
uint16_t ToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint32_t lsb = (bits >> 16) & 1;
  return static_cast<uint16_t>((bits + 0x7fff + lsb) >> 16);
}

TEST(SafetensorsGoldenTest, TinyLlamaModelF32) {
  auto file = OpenOrDie(Golden("tiny-llama/model.safetensors"));
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->tensors().size(), 21u);
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  // Tensors are listed in offset order, back to back from 0.
  uint64_t next = 0;
  for (const TensorInfo& info : file->tensors()) {
    EXPECT_EQ(info.begin, next) << info.name;
    EXPECT_EQ(info.dtype, DType::kFloat32) << info.name;
    next = info.end;
  }
  const TensorInfo* embed = file->Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->shape, (std::vector<int64_t>{384, 64}));
  EXPECT_EQ(embed->numel, 384 * 64);
  EXPECT_EQ(embed->begin, 98304u);
  std::vector<float> values = Values<float>(*file, *embed);
  ASSERT_EQ(values.size(), 384u * 64u);
  // First elements as read independently from the file with Python's struct module.
  EXPECT_FLOAT_EQ(values[0], -0.06120685115456581f);
  EXPECT_FLOAT_EQ(values[3], -0.13799819350242615f);

  const struct {
    const char* name;
    std::vector<int64_t> shape;
  } kShapes[] = {
      {"lm_head.weight", {384, 64}},
      {"model.norm.weight", {64}},
      {"model.layers.0.self_attn.q_proj.weight", {64, 64}},
      {"model.layers.1.self_attn.k_proj.weight", {32, 64}},
      {"model.layers.1.self_attn.v_proj.weight", {32, 64}},
      {"model.layers.0.mlp.gate_proj.weight", {160, 64}},
      {"model.layers.0.mlp.down_proj.weight", {64, 160}},
  };
  for (const auto& expected : kShapes) {
    const TensorInfo* info = file->Find(expected.name);
    ASSERT_NE(info, nullptr) << expected.name;
    EXPECT_EQ(info->shape, expected.shape) << expected.name;
  }
  // RMSNorm weights are 1 + N(0, 0.08): their mean is close to 1, linear weights' close to 0.
  const auto mean = [&](const char* name) {
    double sum = 0;
    std::vector<float> v = Values<float>(*file, *file->Find(name));
    for (float x : v) sum += x;
    return sum / v.size();
  };
  EXPECT_NEAR(mean("model.norm.weight"), 1.0, 0.05);
  EXPECT_NEAR(mean("model.layers.1.input_layernorm.weight"), 1.0, 0.05);
  EXPECT_NEAR(mean("model.layers.0.mlp.up_proj.weight"), 0.0, 0.01);
  EXPECT_EQ(file->Find("model.layers.2.mlp.up_proj.weight"), nullptr);
}

TEST(SafetensorsGoldenTest, TinyLlamaExpectedI64) {
  auto file = OpenOrDie(Golden("tiny-llama/expected.safetensors"));
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->metadata().at("seed"), "1234");
  const TensorInfo* input = file->Find("input_ids");
  const TensorInfo* prompt = file->Find("prompt_ids");
  const TensorInfo* greedy = file->Find("greedy_ids");
  ASSERT_TRUE(input && prompt && greedy);
  EXPECT_EQ(input->dtype, DType::kInt64);
  EXPECT_EQ(input->shape, (std::vector<int64_t>{1, 24}));
  EXPECT_EQ(greedy->shape, (std::vector<int64_t>{1, 16}));
  std::vector<int64_t> input_ids = Values<int64_t>(*file, *input);
  std::vector<int64_t> prompt_ids = Values<int64_t>(*file, *prompt);
  std::vector<int64_t> greedy_ids = Values<int64_t>(*file, *greedy);
  ASSERT_EQ(input_ids.size(), 24u);
  EXPECT_EQ(input_ids[0], 1);  // BOS
  for (size_t i = 1; i < input_ids.size(); ++i) {
    EXPECT_GE(input_ids[i], 3);
    EXPECT_LT(input_ids[i], 384);
  }
  EXPECT_THAT(std::vector<int64_t>(input_ids.begin(), input_ids.begin() + 4),
              ElementsAre(1, 108, 29, 350));
  // prompt_ids = input_ids[:, :8]; greedy_ids starts with the prompt.
  EXPECT_EQ(prompt_ids, std::vector<int64_t>(input_ids.begin(), input_ids.begin() + 8));
  EXPECT_EQ(std::vector<int64_t>(greedy_ids.begin(), greedy_ids.begin() + 8), prompt_ids);
  const TensorInfo* all_hidden = file->Find("all_hidden");
  ASSERT_NE(all_hidden, nullptr);
  EXPECT_EQ(all_hidden->shape, (std::vector<int64_t>{3, 1, 24, 64}));
  for (float x : Values<float>(*file, *all_hidden)) ASSERT_TRUE(std::isfinite(x));
}

TEST(SafetensorsGoldenTest, Bf16ModelIsTheF32ModelRounded) {
  auto f32 = OpenOrDie(Golden("tiny-mistral/model.safetensors"));
  auto bf16 = OpenOrDie(Golden("tiny-mistral-bf16/model.safetensors"));
  ASSERT_TRUE(f32 && bf16);
  ASSERT_EQ(f32->tensors().size(), bf16->tensors().size());
  EXPECT_EQ(bf16->Find("model.layers.0.self_attn.k_proj.weight")->shape,
            (std::vector<int64_t>{16, 64}));
  size_t compared = 0;
  for (const TensorInfo& info : f32->tensors()) {
    const TensorInfo* half = bf16->Find(info.name);
    ASSERT_NE(half, nullptr) << info.name;
    EXPECT_EQ(half->dtype, DType::kBFloat16);
    EXPECT_EQ(half->shape, info.shape);
    EXPECT_EQ(half->end - half->begin, (info.end - info.begin) / 2);
    std::vector<float> full = Values<float>(*f32, info);
    std::vector<uint16_t> rounded = Values<uint16_t>(*bf16, *half);
    ASSERT_EQ(full.size(), rounded.size());
    for (size_t i = 0; i < full.size(); ++i) {
      ASSERT_EQ(rounded[i], ToBf16(full[i])) << info.name << "[" << i << "]";
    }
    compared += full.size();
  }
  EXPECT_GT(compared, 100000u);
}

TEST(SafetensorsGoldenTest, EveryGoldenFileOpens) {
  for (const char* name :
       {"tiny-llama/model.safetensors", "tiny-llama/expected.safetensors",
        "tiny-mistral/model.safetensors", "tiny-mistral/expected.safetensors",
        "tiny-mistral-bf16/model.safetensors", "tiny-mistral-bf16/expected.safetensors",
        "tiny-icae/adapter.safetensors", "tiny-icae/expected.safetensors"}) {
    auto file = SafetensorsFile::Open(Golden(name));
    ASSERT_OK(file) << name;
    EXPECT_FALSE((*file)->tensors().empty()) << name;
    EXPECT_EQ((*file)->header().size() % 8, 0u) << name;
  }
}

// Tensor bytes are views into the file's mapping: the pointer lies in a region of
// /proc/self/maps backed by the file, and consecutive tensors are their offsets apart.
TEST(SafetensorsGoldenTest, BytesAreViewsIntoTheMapping) {
  const std::string path = Golden("tiny-llama/model.safetensors");
  auto file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  const TensorInfo& first = file->tensors().front();
  const TensorInfo& last = file->tensors().back();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(file->Bytes(first).data());
  const uintptr_t end =
      reinterpret_cast<uintptr_t>(file->Bytes(last).data()) + last.end - last.begin;
  EXPECT_EQ(end - begin, last.end - first.begin);
  EXPECT_EQ(file->Bytes(first).data(), file->Bytes(first).data());

  char resolved[4096];
  ASSERT_NE(::realpath(path.c_str(), resolved), nullptr);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool found = false;
  while (std::getline(maps, line)) {
    if (line.find(resolved) == std::string::npos) continue;
    unsigned long lo = 0, hi = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi), 2);
    if (begin >= lo && end <= hi) found = true;
  }
  EXPECT_TRUE(found) << "tensor bytes are not inside a mapping of " << resolved;
}

TEST(SafetensorsGoldenTest, MissingFileIsNotFound) {
  ScratchDir dir;
  EXPECT_THAT(SafetensorsFile::Open(dir.Join("absent.safetensors")),
              testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.safetensors")));
  EXPECT_THAT(
      SafetensorsFile::Open(dir.path()),
      testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

// Every dtype, a scalar, zero-size tensors and metadata, through Serialize and the reader.
TEST(SafetensorsWriterTest, RoundTripIsBitExact) {
  SafetensorsWriter writer;
  writer.SetMetadata("format", "pt");
  writer.SetMetadata("note", "quote \" and unicode \xc3\xa9");
  const float f32[3] = {1.5f, -0.0f, NAN};
  const uint16_t f16[2] = {0x3c00, 0x7e01};
  const uint16_t bf16[4] = {0x3f80, 0xff81, 0x0001, 0x8000};
  const int32_t i32[2] = {-7, 2147483647};
  const int64_t i64[1] = {-9223372036854775807LL - 1};
  const auto view = [](const void* p, size_t n) {
    return absl::string_view(static_cast<const char*>(p), n);
  };
  ASSERT_OK(writer.Add("f32", DType::kFloat32, {3}, view(f32, sizeof(f32))));
  ASSERT_OK(writer.Add("f16", DType::kFloat16, {1, 2}, view(f16, sizeof(f16))));
  ASSERT_OK(writer.Add("empty", DType::kFloat32, {0, 5}, ""));
  ASSERT_OK(writer.Add("bf16", DType::kBFloat16, {2, 2}, view(bf16, sizeof(bf16))));
  ASSERT_OK(writer.Add("i32", DType::kInt32, {2}, view(i32, sizeof(i32))));
  ASSERT_OK(writer.Add("scalar", DType::kInt64, {}, view(i64, sizeof(i64))));
  const std::string image = writer.Serialize();

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(image[i]);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(image.size(),
            8 + header_len + sizeof(f32) + sizeof(f16) + sizeof(bf16) + sizeof(i32) + sizeof(i64));
  // Padding is spaces after the JSON object, which parses on its own.
  const std::string header = image.substr(8, header_len);
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
  EXPECT_LT(header_len - header.rfind('}') - 1, 8u);
  EXPECT_TRUE(nlohmann::json::accept(header));

  auto file = SafetensorsFile::FromBytes(image, "written");
  ASSERT_OK(file);
  const SafetensorsFile& f = **file;
  EXPECT_EQ(f.metadata().at("note"), "quote \" and unicode \xc3\xa9");
  EXPECT_EQ(f.metadata().size(), 2u);
  // Insertion order is offset order.
  std::vector<std::string> order;
  for (const TensorInfo& info : f.tensors()) order.push_back(info.name);
  EXPECT_THAT(order, ElementsAre("f32", "f16", "empty", "bf16", "i32", "scalar"));
  EXPECT_EQ(AsString(f.Bytes(*f.Find("f32"))), view(f32, sizeof(f32)));
  EXPECT_EQ(AsString(f.Bytes(*f.Find("f16"))), view(f16, sizeof(f16)));
  EXPECT_EQ(AsString(f.Bytes(*f.Find("bf16"))), view(bf16, sizeof(bf16)));
  EXPECT_EQ(AsString(f.Bytes(*f.Find("i32"))), view(i32, sizeof(i32)));
  EXPECT_EQ(AsString(f.Bytes(*f.Find("scalar"))), view(i64, sizeof(i64)));
  EXPECT_EQ(f.Find("bf16")->dtype, DType::kBFloat16);
  EXPECT_EQ(f.Find("f16")->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(f.Find("scalar")->shape.empty());
  EXPECT_EQ(f.Find("scalar")->numel, 1);
  EXPECT_EQ(f.Find("empty")->numel, 0);
  EXPECT_EQ(f.Bytes(*f.Find("empty")).size(), 0u);

  // The same image through a file on disk.
  ScratchDir dir;
  ASSERT_OK(writer.WriteFile(dir.Join("w.safetensors")));
  auto contents = ReadFileToString(dir.Join("w.safetensors"));
  ASSERT_OK(contents);
  EXPECT_EQ(*contents, image);
  auto reopened = SafetensorsFile::Open(dir.Join("w.safetensors"));
  ASSERT_OK(reopened);
  EXPECT_EQ((*reopened)->header(), header);
}

TEST(SafetensorsWriterTest, RejectsBadTensors) {
  SafetensorsWriter writer;
  const std::string four(4, '\0');
  ASSERT_OK(writer.Add("a", DType::kFloat32, {1}, four));
  using testing::StatusIs;
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(writer.Add("a", DType::kFloat32, {1}, four),
              StatusIs(kInvalid, HasSubstr("duplicate tensor 'a'")));
  EXPECT_THAT(writer.Add("b", DType::kFloat32, {2}, four),
              StatusIs(kInvalid, HasSubstr("tensor 'b': 4 bytes given, shape needs 8")));
  EXPECT_THAT(writer.Add("c", DType::kInt64, {1}, four),
              StatusIs(kInvalid, HasSubstr("shape needs 8")));
  EXPECT_THAT(writer.Add("d", DType::kFloat32, {-1}, four),
              StatusIs(kInvalid, HasSubstr("tensor 'd': bad shape")));
  EXPECT_THAT(writer.Add("", DType::kFloat32, {1}, four),
              StatusIs(kInvalid, HasSubstr("invalid tensor name")));
  EXPECT_THAT(writer.Add("__metadata__", DType::kFloat32, {1}, four),
              StatusIs(kInvalid, HasSubstr("invalid tensor name")));
  // Failed adds leave the writer unchanged.
  auto file = SafetensorsFile::FromBytes(writer.Serialize(), "after_errors");
  ASSERT_OK(file);
  EXPECT_EQ((*file)->tensors().size(), 1u);
}

// Copies every tensor of `source` (in offset order) and its metadata into a writer.
SafetensorsWriter Rewrite(const SafetensorsFile& source) {
  SafetensorsWriter writer;
  for (const auto& [key, value] : source.metadata()) writer.SetMetadata(key, value);
  for (const TensorInfo& info : source.tensors()) {
    EXPECT_OK(writer.Add(info.name, info.dtype, info.shape, AsString(source.Bytes(info))));
  }
  return writer;
}

// The golden model was written by the reference implementation; our writer reproduces it byte
// for byte (compact JSON, metadata first, tensors in offset order, space padding).
TEST(SafetensorsWriterTest, RewrittenGoldenModelIsByteIdentical) {
  for (const char* name : {"tiny-llama/model.safetensors", "tiny-mistral-bf16/model.safetensors",
                           "tiny-icae/adapter.safetensors"}) {
    auto file = OpenOrDie(Golden(name));
    ASSERT_NE(file, nullptr);
    auto original = ReadFileToString(Golden(name));
    ASSERT_OK(original);
    EXPECT_TRUE(Rewrite(*file).Serialize() == *original) << name;
  }
}

// Files whose metadata keys are not sorted cannot be byte-identical, but parse identically.
TEST(SafetensorsWriterTest, RewrittenGoldenFileParsesIdentically) {
  for (const char* name : {"tiny-llama/expected.safetensors", "tiny-icae/expected.safetensors",
                           "tiny-mistral-bf16/expected.safetensors"}) {
    auto file = OpenOrDie(Golden(name));
    ASSERT_NE(file, nullptr);
    auto again = SafetensorsFile::FromBytes(Rewrite(*file).Serialize(), "rewritten");
    ASSERT_OK(again);
    EXPECT_EQ((*again)->metadata(), file->metadata());
    ASSERT_EQ((*again)->tensors().size(), file->tensors().size());
    for (size_t i = 0; i < file->tensors().size(); ++i) {
      const TensorInfo& a = file->tensors()[i];
      const TensorInfo& b = (*again)->tensors()[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.dtype, b.dtype);
      EXPECT_EQ(a.shape, b.shape);
      EXPECT_EQ(a.begin, b.begin);
      EXPECT_EQ(a.end, b.end);
      EXPECT_TRUE(AsString(file->Bytes(a)) == AsString((*again)->Bytes(b))) << a.name;
    }
  }
}

}  // namespace
}  // namespace icae
