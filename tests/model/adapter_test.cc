// Adapter loading: both key layouts, the config, and every mismatch with its message.
#include "common/model/adapter.h"

#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_replace.h"
#include "common/io/safetensors_writer.h"
#include "common/model/adapter_writer.h"
#include "common/model/compressor.h"
#include "common/model/tensor_io.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::icae::testing::TestData;
using ::testing::HasSubstr;

using Tensors = std::vector<std::pair<std::string, at::Tensor>>;

class AdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = LoadModelConfig(TestData("tiny-llama"));
    ASSERT_OK(config);
    config_ = *config;
    auto tensors = ReadAllTensors(TestData("tiny-icae/adapter.safetensors"));
    ASSERT_OK(tensors);
    golden_ = *tensors;
  }

  // Writes `tensors` (and a config unless `config_json` is empty) into a scratch dir.
  std::string Write(const Tensors& tensors, const std::string& config_json) {
    SafetensorsWriter writer;
    for (const auto& [name, t] : tensors) EXPECT_OK(AddTensor(writer, name, t));
    const std::string path = dir_.Join("adapter.safetensors");
    EXPECT_OK(writer.WriteFile(path));
    std::remove(dir_.Join("adapter_config.json").c_str());
    if (!config_json.empty()) std::ofstream(dir_.Join("adapter_config.json")) << config_json;
    return path;
  }

  std::string GoldenConfig() {
    std::ifstream in(TestData("tiny-icae/adapter_config.json"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  Tensors Without(const std::string& name) {
    Tensors out;
    for (const auto& p : golden_) {
      if (p.first != name) out.push_back(p);
    }
    return out;
  }

  Tensors Replaced(const std::string& name, at::Tensor value) {
    Tensors out = golden_;
    for (auto& p : out) {
      if (p.first == name) p.second = value;
    }
    return out;
  }

  ModelConfig config_;
  Tensors golden_;
  ScratchDir dir_;
};

TEST_F(AdapterTest, LoadsTheIcaeV2Layout) {
  auto adapter = LoadAdapter(TestData("tiny-icae"), config_, true);
  ASSERT_OK(adapter);
  EXPECT_EQ(adapter->config.r, 8);
  EXPECT_DOUBLE_EQ(adapter->config.scaling(), 4.0);
  EXPECT_EQ(adapter->config.mem_size, 4);
  EXPECT_EQ(adapter->config.compression_rate, 4);
  ASSERT_EQ(adapter->lora.size(), 2u);
  EXPECT_EQ(adapter->lora[1].at("v_proj").b.sizes(), (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(adapter->memory_embed.sizes(), (std::vector<int64_t>{7, 64}));
  EXPECT_EQ(adapter->fingerprint.size(), 64u);
}

TEST_F(AdapterTest, LoadsThePeftLayoutWithTheSameValues) {
  Tensors peft;
  for (const auto& [name, t] : golden_) {
    std::string renamed =
        absl::StrReplaceAll(name, {{"icae.base_model", "base_model"}, {".default", ""}});
    peft.emplace_back(renamed, t);
  }
  auto adapter = LoadAdapter(Write(peft, GoldenConfig()), config_, true);
  ASSERT_OK(adapter);
  auto golden = LoadAdapter(TestData("tiny-icae"), config_, true);
  ASSERT_OK(golden);
  EXPECT_TRUE(adapter->lora[0].at("q_proj").a.equal(golden->lora[0].at("q_proj").a));
}

TEST_F(AdapterTest, WithoutAConfigAssumesTheReleasedValues) {
  auto adapter = LoadAdapter(Write(golden_, ""), config_, true);
  ASSERT_OK(adapter);
  EXPECT_EQ(adapter->config.r, 8);
  EXPECT_DOUBLE_EQ(adapter->config.lora_alpha, 32);
  EXPECT_EQ(adapter->config.mem_size, 4);
  EXPECT_EQ(adapter->config.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
}

TEST_F(AdapterTest, DecoderSideSkipsTheLora) {
  auto adapter = LoadAdapter(TestData("tiny-icae"), config_, false);
  ASSERT_OK(adapter);
  EXPECT_TRUE(adapter->lora.empty());
  EXPECT_EQ(adapter->SpecialEmbedding(SpecialToken::kAe).size(0), 64);
}

TEST_F(AdapterTest, HiddenSizeMismatchNamesTheTensor) {
  auto path = Write(Replaced("memory_token_embed.weight", at::zeros({7, 32})), GoldenConfig());
  EXPECT_THAT(LoadAdapter(path, config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("memory_token_embed.weight"),
                                        HasSubstr("hidden_size is 64"))));
}

TEST_F(AdapterTest, MemSizeMismatch) {
  auto path = Write(Replaced("memory_token_embed.weight", at::zeros({9, 64})), GoldenConfig());
  EXPECT_THAT(LoadAdapter(path, config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mem_size 4 needs 7")));
}

TEST_F(AdapterTest, LayerCountMismatch) {
  Tensors extra = golden_;
  extra.emplace_back("icae.base_model.model.model.layers.2.self_attn.q_proj.lora_A.default.weight",
                     at::zeros({8, 64}));
  EXPECT_THAT(LoadAdapter(Write(extra, GoldenConfig()), config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("layers.2.self_attn.q_proj.lora_A"),
                                        HasSubstr("model has 2 layers"))));
}

TEST_F(AdapterTest, TargetModuleMissingInTheModel) {
  std::string config = absl::StrReplaceAll(GoldenConfig(), {{"\"v_proj\"", "\"w_proj\""}});
  EXPECT_THAT(LoadAdapter(Write(golden_, config), config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'w_proj' does not exist")));
}

TEST_F(AdapterTest, MissingLoraTensor) {
  const std::string name =
      "icae.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight";
  EXPECT_THAT(
      LoadAdapter(Write(Without(name), GoldenConfig()), config_, true),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          HasSubstr("missing tensor 'base_model.model.model.layers.1.self_attn.v_proj.lora_B")));
}

TEST_F(AdapterTest, MissingMemoryEmbedding) {
  EXPECT_THAT(
      LoadAdapter(Write(Without("memory_token_embed.weight"), GoldenConfig()), config_, true),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("missing tensor 'memory_token_embed.weight'")));
}

TEST_F(AdapterTest, WrongLoraShape) {
  const std::string name =
      "icae.base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight";
  EXPECT_THAT(LoadAdapter(Write(Replaced(name, at::zeros({32, 8})), GoldenConfig()), config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(name), HasSubstr("expected [64,8]"))));
}

TEST_F(AdapterTest, UnknownTensor) {
  Tensors extra = golden_;
  extra.emplace_back("lm_head.weight", at::zeros({384, 64}));
  EXPECT_THAT(LoadAdapter(Write(extra, GoldenConfig()), config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unexpected tensor 'lm_head.weight'")));
}

TEST_F(AdapterTest, TensorsForAnUntargetedModule) {
  std::string config =
      absl::StrReplaceAll(GoldenConfig(), {{", \"v_proj\"", ""}, {",\n    \"v_proj\"", ""}});
  ASSERT_EQ(config.find("v_proj"), std::string::npos) << config;
  EXPECT_THAT(LoadAdapter(Write(golden_, config), config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'v_proj'")));
}

TEST_F(AdapterTest, WrittenAdaptersLoadBack) {
  AdapterConfig config;
  config.r = 4;
  config.lora_alpha = 8;
  config.mem_size = 6;
  config.compression_rate = 2;
  config.target_modules = {"q_proj", "v_proj", "down_proj"};
  Adapter written = RandomAdapter(config_, config, 11);
  ASSERT_OK(SaveIcaeAdapter(dir_.path(), written, "tiny-llama"));
  auto loaded = LoadAdapter(dir_.path(), config_, true);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->config.r, 4);
  EXPECT_DOUBLE_EQ(loaded->config.scaling(), 2.0);
  EXPECT_EQ(loaded->config.mem_size, 6);
  EXPECT_EQ(loaded->config.compression_rate, 2);
  EXPECT_TRUE(loaded->memory_embed.equal(written.memory_embed));
  EXPECT_TRUE(loaded->lora[1].at("down_proj").b.equal(written.lora[1].at("down_proj").b));
  EXPECT_NE(RandomAdapter(config_, config, 12).memory_embed.sum().item<float>(),
            written.memory_embed.sum().item<float>());
}

// The memory position layout is a property of the adapter: written, read back, part of the
// fingerprint (so slots of one layout are never taken for the other), a bad value refused.
TEST_F(AdapterTest, MemoryPositionLayoutRoundTripsAndChangesTheFingerprint) {
  AdapterConfig config;
  config.r = 4;
  config.lora_alpha = 8;
  config.mem_size = 6;
  config.compression_rate = 2;
  config.target_modules = {"q_proj", "v_proj"};
  Adapter written = RandomAdapter(config_, config, 11);
  ASSERT_OK(SaveIcaeAdapter(dir_.path(), written, "tiny-llama"));
  auto append = LoadAdapter(dir_.path(), config_, true);
  ASSERT_OK(append);
  EXPECT_EQ(append->config.memory_positions, MemoryPositions::kAppend);
  written.config.memory_positions = MemoryPositions::kUniform;
  ASSERT_OK(SaveIcaeAdapter(dir_.path(), written, "tiny-llama"));
  auto uniform = LoadAdapter(dir_.path(), config_, true);
  ASSERT_OK(uniform);
  EXPECT_EQ(uniform->config.memory_positions, MemoryPositions::kUniform);
  EXPECT_NE(uniform->fingerprint, append->fingerprint);

  std::string text = GoldenConfig();
  text.insert(text.find('{') + 1, "\"memory_position_layout\": \"middle\",");
  EXPECT_THAT(LoadAdapter(Write(golden_, text), config_, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("memory_position_layout")));
}

TEST(MemoryPositionIdsTest, AppendAndUniform) {
  EXPECT_EQ(MemoryPositionIds(8, 4, MemoryPositions::kAppend),
            (std::vector<int64_t>{8, 9, 10, 11}));
  EXPECT_EQ(MemoryPositionIds(8, 4, MemoryPositions::kUniform),
            (std::vector<int64_t>{2, 4, 6, 8}));
  // A short last segment: non-decreasing, the last one right after the text.
  EXPECT_EQ(MemoryPositionIds(5, 4, MemoryPositions::kUniform), (std::vector<int64_t>{1, 2, 3, 5}));
}

TEST_F(AdapterTest, MissingFile) {
  EXPECT_THAT(LoadAdapter(dir_.Join("nothing"), config_, true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("adapter not found")));
}

}  // namespace
}  // namespace icae
