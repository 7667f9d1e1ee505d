// The model spec read from an HF config.json: what the checkpoint is, never a runtime flag.
// Supported: LlamaForCausalLM and MistralForCausalLM. Keys that would change the math and are not
// supported (rope scaling, attention bias, another activation, ...) are refused by name.
#ifndef ICAE_COMMON_MODEL_MODEL_CONFIG_H_
#define ICAE_COMMON_MODEL_MODEL_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icae {

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM" or "MistralForCausalLM".
  std::string model_type;    // "llama" or "mistral".
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // Given, or hidden_size / num_heads.
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  // Mistral: keys attend to at most this many most recent positions (themselves included).
  // nullopt = full causal attention.
  std::optional<int> sliding_window;
  int bos_token_id = 1;
  int eos_token_id = 2;
  std::string torch_dtype = "float32";  // Storage dtype recorded by the checkpoint.

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters of the model (embeddings and lm_head counted once when tied).
  int64_t ParameterCount() const;
};

// Parses config.json text; `source` names the file in errors.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view source);
// Reads `<dir>/config.json`.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);
// The config.json text for `config` (what save_pretrained would write for these fields).
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_MODEL_CONFIG_H_
