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

// Writes a random cross-encoder package (common/model/cross_encoder.h) to `dir` for the decoder
// base `decoder_dir`: its own encoder model `encoder` in <dir>/encoder (random weights, plus
// decoder_dir's tokenizer.model when it has one), mem_size slots per segment at `rate` tokens
// per slot, memory rows and special rows ~ N(0, 0.02), a `projector` ("linear" or "mlp", width
// the decoder's hidden size) with weights ~ N(0, 1 / sqrt(in)). Deterministic per seed.
absl::Status WriteRandomCrossEncoder(const std::string& dir, const std::string& decoder_dir,
                                     const ModelConfig& encoder, int mem_size, int rate,
                                     const std::string& projector, uint64_t seed);

}  // namespace icae

#endif  // ICAE_TOOLS_BENCH_RANDOM_ICAE_MODEL_H_
