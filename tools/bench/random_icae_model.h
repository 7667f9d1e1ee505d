// A random Llama model plus a random ICAE v2 adapter written to disk, for benchmarks and tests
// that need a model of a given size (no pretrained weights can be fetched here). The weights mean
// nothing; shapes, file formats and costs are real.
#ifndef ICAE_TOOLS_BENCH_RANDOM_ICAE_MODEL_H_
#define ICAE_TOOLS_BENCH_RANDOM_ICAE_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/model/model_config.h"

namespace icae {

// A LlamaForCausalLM config (bos 1, eos 2, untied lm_head).
ModelConfig RandomLlamaConfig(int hidden, int layers, int heads, int intermediate, int vocab,
                              int max_positions);

struct RandomIcaePaths {
  std::string model_dir;  // config.json + model.safetensors
  std::string adapter;    // adapter.safetensors (adapter_config.json beside it)
};

// Where WriteRandomIcaeModel(dir, ...) puts the model and the adapter.
RandomIcaePaths RandomIcaePathsIn(const std::string& dir);

// Writes `<dir>/model/` and `<dir>/adapter/` (ICAE v2 key names: LoRA r `lora_r` on q_proj and
// v_proj, memory_token_embed [mem_size + 3, hidden]; compression rate 4). Deterministic per seed.
absl::Status WriteRandomIcaeModel(const std::string& dir, const ModelConfig& config, int mem_size,
                                  int lora_r, uint64_t seed, RandomIcaePaths* paths);

}  // namespace icae

#endif  // ICAE_TOOLS_BENCH_RANDOM_ICAE_MODEL_H_
