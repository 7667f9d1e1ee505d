#include <gtest/gtest.h>

#include "common/model/model_config.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kBase[] = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 384,
  "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
  "rope_theta": 10000.0, "max_position_embeddings": 512, "tie_word_embeddings": false,
  "hidden_act": "silu", "rope_scaling": null, "attention_bias": false, "pretraining_tp": 1)";

std::string With(const std::string& extra) { return std::string(kBase) + extra + "}"; }

TEST(ModelConfigTest, ParsesLlamaAndDerivesHeadDim) {
  auto config = ParseModelConfig(With(""), "config.json");
  ASSERT_OK(config);
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_EQ(config->num_kv_heads, 2);
  EXPECT_FALSE(config->sliding_window.has_value());
}

TEST(ModelConfigTest, ExplicitHeadDimWins) {
  auto config = ParseModelConfig(With(R"(, "head_dim": 32)"), "config.json");
  ASSERT_OK(config);
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_EQ(config->q_dim(), 128);
}

TEST(ModelConfigTest, SlidingWindowIsKeptWhenShorterThanTheContext) {
  auto config = ParseModelConfig(With(R"(, "sliding_window": 16)"), "c");
  ASSERT_OK(config);
  EXPECT_EQ(config->sliding_window, 16);
  auto full = ParseModelConfig(With(R"(, "sliding_window": 4096)"), "c");
  ASSERT_OK(full);
  EXPECT_FALSE(full->sliding_window.has_value());
  auto null_window = ParseModelConfig(With(R"(, "sliding_window": null)"), "c");
  ASSERT_OK(null_window);
  EXPECT_FALSE(null_window->sliding_window.has_value());
}

struct Refusal {
  const char* extra;
  const char* key;
};

class RefusedKeyTest : public ::testing::TestWithParam<Refusal> {};

TEST_P(RefusedKeyTest, NamesTheKey) {
  std::string text = With(GetParam().extra);
  EXPECT_THAT(ParseModelConfig(text, "dir/config.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("dir/config.json"),
                                        HasSubstr(std::string("\"") + GetParam().key + "\""))));
}

INSTANTIATE_TEST_SUITE_P(
    Keys, RefusedKeyTest,
    ::testing::Values(Refusal{R"(, "rope_scaling": {"type": "linear", "factor": 2.0})",
                              "rope_scaling"},
                      Refusal{R"(, "hidden_act": "gelu")", "hidden_act"},
                      Refusal{R"(, "attention_bias": true)", "attention_bias"},
                      Refusal{R"(, "mlp_bias": true)", "mlp_bias"},
                      Refusal{R"(, "pretraining_tp": 2)", "pretraining_tp"},
                      Refusal{R"(, "partial_rotary_factor": 0.5)", "partial_rotary_factor"},
                      Refusal{R"(, "quantization_config": {"bits": 4})", "quantization_config"},
                      Refusal{R"(, "sliding_window": -3)", "sliding_window"},
                      Refusal{R"(, "tie_word_embeddings": "yes")", "tie_word_embeddings"}));

TEST(ModelConfigTest, RefusesOtherArchitectures) {
  std::string text = kBase;
  text.replace(text.find("LlamaForCausalLM"), 16, "GPT2LMHeadModel");
  EXPECT_THAT(ParseModelConfig(text + "}", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("architectures"), HasSubstr("GPT2LMHeadModel"))));
}

TEST(ModelConfigTest, MissingOrBadFields) {
  EXPECT_THAT(ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"]})", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vocab_size")));
  EXPECT_THAT(ParseModelConfig("not json", "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a JSON object")));
  EXPECT_THAT(ParseModelConfig(With(R"(, "num_key_value_heads": 3)"), "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_key_value_heads")));
  EXPECT_THAT(ParseModelConfig(With(R"(, "hidden_size": -64)"), "c"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hidden_size")));
}

TEST(ModelConfigTest, JsonRoundTrip) {
  auto config = ParseModelConfig(With(R"(, "head_dim": 32)"), "c");
  ASSERT_OK(config);
  auto again = ParseModelConfig(ModelConfigToJson(*config), "c2");
  ASSERT_OK(again);
  EXPECT_EQ(again->head_dim, 32);
  EXPECT_EQ(again->num_kv_heads, config->num_kv_heads);
  EXPECT_EQ(again->rope_theta, config->rope_theta);
}

}  // namespace
}  // namespace icae
