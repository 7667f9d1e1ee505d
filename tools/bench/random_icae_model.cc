#include "tools/bench/random_icae_model.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/adapter_writer.h"
#include "common/model/torch_status.h"
#include "common/model/weights.h"

namespace icae {

ModelConfig RandomLlamaConfig(int hidden, int layers, int heads, int intermediate, int vocab,
                              int max_positions) {
  ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.model_type = "llama";
  config.hidden_size = hidden;
  config.num_layers = layers;
  config.num_heads = heads;
  config.num_kv_heads = heads;
  config.head_dim = hidden / heads;
  config.intermediate_size = intermediate;
  config.vocab_size = vocab;
  config.max_position_embeddings = max_positions;
  return config;
}

RandomIcaePaths RandomIcaePathsIn(const std::string& dir) {
  return RandomIcaePaths{dir + "/model", dir + "/adapter/adapter.safetensors"};
}

absl::Status WriteRandomIcaeModel(const std::string& dir, const ModelConfig& config, int mem_size,
                                  int lora_r, uint64_t seed, RandomIcaePaths* paths) {
  *paths = RandomIcaePathsIn(dir);
  const std::string adapter_dir = dir + "/adapter";
  ::mkdir(dir.c_str(), 0755);
  RETURN_IF_ERROR(CatchTorch("writing the random model", [&]() -> absl::Status {
    TransformerWeights weights = RandomWeights(config, seed);
    return SaveHfModel(paths->model_dir, config, weights, at::kFloat);
  }));
  return CatchTorch("writing the random adapter", [&]() -> absl::Status {
    AdapterConfig adapter_config;
    adapter_config.r = lora_r;
    adapter_config.lora_alpha = 32;
    adapter_config.target_modules = {"q_proj", "v_proj"};
    adapter_config.mem_size = mem_size;
    adapter_config.compression_rate = 4;
    return SaveIcaeAdapter(adapter_dir, RandomAdapter(config, adapter_config, seed + 1), "model");
  });
}

}  // namespace icae
