// Writing adapters in the ICAE v2 layout (what LoadAdapter reads): the trainer's output, and
// random adapters for benchmarks and tests.
#ifndef ICAE_COMMON_MODEL_ADAPTER_WRITER_H_
#define ICAE_COMMON_MODEL_ADAPTER_WRITER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/model/adapter.h"
#include "common/model/model_config.h"

namespace icae {

// Writes `<dir>/adapter.safetensors` (ICAE v2 key names, float32) and `<dir>/adapter_config.json`
// for `adapter` (its lora maps and memory_embed; `adapter.config` gives r, alpha, targets, mem_size
// and rate). Creates `dir` if needed.
absl::Status SaveIcaeAdapter(const std::string& dir, const Adapter& adapter,
                             const std::string& base_model_name);

// A random adapter for `model`: LoRA A ~ N(0, 0.02), B ~ N(0, 0.02) on the config's targets,
// memory rows ~ N(0, 0.02). Deterministic for a seed.
Adapter RandomAdapter(const ModelConfig& model, const AdapterConfig& config, uint64_t seed);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_ADAPTER_WRITER_H_
