#include "common/model/model_config.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "nlohmann/json.hpp"

namespace icae {
namespace {

using nlohmann::json;

absl::Status Refuse(absl::string_view source, absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": unsupported config key \"", key, "\": ", why));
}

absl::Status GetInt(const json& j, absl::string_view source, const char* key, bool required,
                    int* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required)
      return absl::InvalidArgumentError(absl::StrCat(source, ": missing \"", key, "\""));
    return absl::OkStatus();
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1 << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": \"", key, "\" must be a positive integer, got ", it->dump()));
  }
  *out = it->get<int>();
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, absl::string_view source, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number() || it->get<double>() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": \"", key, "\" must be a positive number, got ", it->dump()));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

// A key must be absent, null, or equal to the one value the implementation computes with.
template <typename T>
absl::Status RequireIfPresent(const json& j, absl::string_view source, const char* key,
                              const T& supported, absl::string_view why) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  bool ok = false;
  try {
    ok = it->get<T>() == supported;
  } catch (const json::exception&) {
    ok = false;
  }
  if (!ok) return Refuse(source, key, absl::StrCat(it->dump(), " (", why, ")"));
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::ParameterCount() const {
  const int64_t h = hidden_size;
  const int64_t per_layer = h * q_dim() + 2 * h * kv_dim() + q_dim() * h +
                            3 * h * static_cast<int64_t>(intermediate_size) + 2 * h;
  const int64_t embed = static_cast<int64_t>(vocab_size) * h;
  return embed * (tie_word_embeddings ? 1 : 2) + num_layers * per_layer + h;
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view source) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  ModelConfig c;
  auto archs = j.find("architectures");
  if (archs != j.end() && !archs->is_null()) {
    if (!archs->is_array() || archs->size() != 1 || !(*archs)[0].is_string()) {
      return Refuse(source, "architectures", "expected one architecture name");
    }
    c.architecture = (*archs)[0].get<std::string>();
  }
  auto type_it = j.find("model_type");
  if (type_it != j.end() && type_it->is_string()) c.model_type = type_it->get<std::string>();
  if (c.architecture.empty()) {
    if (c.model_type == "llama") c.architecture = "LlamaForCausalLM";
    if (c.model_type == "mistral") c.architecture = "MistralForCausalLM";
  }
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM") {
    return Refuse(
        source, "architectures",
        absl::StrCat("'", c.architecture, "' (supported: LlamaForCausalLM, MistralForCausalLM)"));
  }
  if (c.model_type.empty())
    c.model_type = c.architecture == "LlamaForCausalLM" ? "llama" : "mistral";
  if (c.model_type != "llama" && c.model_type != "mistral") {
    return Refuse(source, "model_type", absl::StrCat("'", c.model_type, "'"));
  }

  RETURN_IF_ERROR(GetInt(j, source, "vocab_size", true, &c.vocab_size));
  RETURN_IF_ERROR(GetInt(j, source, "hidden_size", true, &c.hidden_size));
  RETURN_IF_ERROR(GetInt(j, source, "intermediate_size", true, &c.intermediate_size));
  RETURN_IF_ERROR(GetInt(j, source, "num_hidden_layers", true, &c.num_layers));
  RETURN_IF_ERROR(GetInt(j, source, "num_attention_heads", true, &c.num_heads));
  c.num_kv_heads = c.num_heads;
  RETURN_IF_ERROR(GetInt(j, source, "num_key_value_heads", false, &c.num_kv_heads));
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": num_attention_heads ", c.num_heads,
                                                   " is not a multiple of num_key_value_heads ",
                                                   c.num_kv_heads));
  }
  c.head_dim = 0;
  RETURN_IF_ERROR(GetInt(j, source, "head_dim", false, &c.head_dim));
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": hidden_size ", c.hidden_size,
                                                     " is not divisible by num_attention_heads ",
                                                     c.num_heads, " and no head_dim is given"));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": head_dim ", c.head_dim, " is odd"));
  }
  RETURN_IF_ERROR(GetDouble(j, source, "rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(GetDouble(j, source, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(GetInt(j, source, "max_position_embeddings", false, &c.max_position_embeddings));
  RETURN_IF_ERROR(GetInt(j, source, "bos_token_id", false, &c.bos_token_id));
  RETURN_IF_ERROR(GetInt(j, source, "eos_token_id", false, &c.eos_token_id));
  if (auto it = j.find("tie_word_embeddings"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return Refuse(source, "tie_word_embeddings", "must be true or false");
    c.tie_word_embeddings = it->get<bool>();
  }
  if (auto it = j.find("sliding_window"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
      return Refuse(source, "sliding_window", "must be null or a positive integer");
    }
    // A window at least as long as every position the model can see is full attention.
    if (it->get<int64_t>() < c.max_position_embeddings) c.sliding_window = it->get<int>();
  }
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string()) {
    c.torch_dtype = it->get<std::string>();
  }

  // Keys that change the math. Absent, null or the default value are fine; anything else is
  // refused.
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    return Refuse(source, "rope_scaling",
                  absl::StrCat(it->dump(), " (only plain RoPE is supported)"));
  }
  RETURN_IF_ERROR(RequireIfPresent<std::string>(j, source, "hidden_act", "silu",
                                                "only SiLU-gated MLPs are supported"));
  RETURN_IF_ERROR(RequireIfPresent<bool>(j, source, "attention_bias", false,
                                         "projections with bias are not supported"));
  RETURN_IF_ERROR(
      RequireIfPresent<bool>(j, source, "mlp_bias", false, "MLP bias is not supported"));
  RETURN_IF_ERROR(RequireIfPresent<int>(j, source, "pretraining_tp", 1,
                                        "tensor-parallel pretraining slices are not supported"));
  RETURN_IF_ERROR(RequireIfPresent<std::string>(j, source, "rope_type", "default",
                                                "only plain RoPE is supported"));
  if (auto it = j.find("partial_rotary_factor"); it != j.end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() != 1.0) {
      return Refuse(source, "partial_rotary_factor", "only full rotary embeddings are supported");
    }
  }
  if (auto it = j.find("quantization_config"); it != j.end() && !it->is_null()) {
    return Refuse(source, "quantization_config", "quantized checkpoints are not supported");
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = JoinPath(model_dir, "config.json");
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

std::string ModelConfigToJson(const ModelConfig& c) {
  json j = {
      {"architectures", {c.architecture}},
      {"model_type", c.model_type},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.rms_norm_eps},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},
      {"attention_bias", false},
      {"rope_scaling", nullptr},
      {"torch_dtype", c.torch_dtype},
  };
  if (c.model_type == "mistral") {
    j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  }
  return j.dump(2) + "\n";
}

}  // namespace icae
