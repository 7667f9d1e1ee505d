#include "tools/bench/random_icae_model.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/safetensors_writer.h"
#include "common/model/tensor_io.h"
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

absl::Status WriteRandomIcaeModel(const std::string& dir, const ModelConfig& config, int mem_size,
                                  int lora_r, uint64_t seed, RandomIcaePaths* paths) {
  paths->model_dir = dir + "/model";
  const std::string adapter_dir = dir + "/adapter";
  paths->adapter = adapter_dir + "/adapter.safetensors";
  ::mkdir(dir.c_str(), 0755);
  ::mkdir(adapter_dir.c_str(), 0755);
  RETURN_IF_ERROR(CatchTorch("writing the random model", [&]() -> absl::Status {
    TransformerWeights weights = RandomWeights(config, seed);
    return SaveHfModel(paths->model_dir, config, weights, at::kFloat);
  }));
  RETURN_IF_ERROR(CatchTorch("writing the random adapter", [&]() -> absl::Status {
    at::manual_seed(seed + 1);
    SafetensorsWriter writer;
    const int hidden = config.hidden_size;
    for (int layer = 0; layer < config.num_layers; ++layer) {
      const std::string prefix =
          absl::StrCat("icae.base_model.model.model.layers.", layer, ".self_attn.");
      for (const auto& [module, out] :
           {std::pair<std::string, int>{"q_proj", config.q_dim()}, {"v_proj", config.kv_dim()}}) {
        RETURN_IF_ERROR(AddTensor(writer, prefix + module + ".lora_A.default.weight",
                                  at::randn({lora_r, hidden}) * 0.02));
        RETURN_IF_ERROR(AddTensor(writer, prefix + module + ".lora_B.default.weight",
                                  at::randn({out, lora_r}) * 0.02));
      }
    }
    RETURN_IF_ERROR(
        AddTensor(writer, "memory_token_embed.weight", at::randn({mem_size + 3, hidden}) * 0.02));
    return writer.WriteFile(paths->adapter);
  }));
  std::ofstream json(adapter_dir + "/adapter_config.json");
  json << "{\"peft_type\": \"LORA\", \"r\": " << lora_r
       << ", \"lora_alpha\": 32, \"target_modules\": [\"q_proj\", \"v_proj\"], \"mem_size\": "
       << mem_size << ", \"mean_compression_rate\": 4}\n";
  json.close();
  if (!json) return absl::InternalError(absl::StrCat("cannot write ", adapter_dir));
  return absl::OkStatus();
}

}  // namespace icae
