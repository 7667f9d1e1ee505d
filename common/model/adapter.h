// ICAE adapters: LoRA deltas for the encoder and the memory-token embedding table.
//
// Accepted layouts (file, or a directory holding adapter.safetensors / adapter_model.safetensors):
//   ICAE v2 module state dict:
//     icae.base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.default.weight   [r, in]
//     icae.base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.default.weight   [out, r]
//     memory_token_embed.weight                                                        [mem+3,
//     hidden]
//   standard PEFT: base_model.model.model.layers.{i}.{self_attn,mlp}.{x}_proj.lora_{A,B}.weight
// The config comes from adapter_config.json beside the file (r, lora_alpha, target_modules,
// mem_size, mean_compression_rate, memory_position_layout). Without one, the released ICAE v2
// values are assumed (lora_alpha 32, rate 4, r and mem_size from the tensor shapes) and a warning
// is logged. Any mismatch with the base model, a missing tensor or an unknown one is
// InvalidArgument naming it.
#ifndef ICAE_COMMON_MODEL_ADAPTER_H_
#define ICAE_COMMON_MODEL_ADAPTER_H_

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/slot_kind.h"
#include "common/model/model_config.h"

namespace icae {

// Where the encoder puts the memory tokens in RoPE position space (the sequence order is always
// [segment tokens][memory tokens]).
//   kAppend:  positions len .. len + mem - 1, right after the text (ICAE v1/v2, the released
//             checkpoints; the default).
//   kUniform: memory token j at position floor((j + 1) * len / mem), the end of the j-th of mem
//             equal chunks of the segment, so every memory token sits at the same small distance
//             from the tokens it summarises (the "enhanced position layout" of Zhao et al. 2024).
//             adapter_config.json: "memory_position_layout": "uniform".
enum class MemoryPositions { kAppend, kUniform };

struct AdapterConfig {
  int r = 0;
  double lora_alpha = 0;
  std::vector<std::string> target_modules;  // Subset of q,k,v,o,gate,up,down _proj.
  int mem_size = 0;                         // Memory slots per segment.
  int compression_rate = 4;                 // Tokens per slot (segment = mem_size * rate tokens).
  MemoryPositions memory_positions = MemoryPositions::kAppend;
  SlotKind slot_kind = SlotKind::kEmbedding;  // "slot_kind" (common/base/slot_kind.h).
  double scaling() const { return r > 0 ? lora_alpha / r : 0.0; }
};

// Rows of memory_token_embed after the mem_size memory rows.
enum class SpecialToken { kAe = 0, kLm = 1, kFt = 2 };

struct LoraPair {
  at::Tensor a;  // [r, in_features], float32
  at::Tensor b;  // [out_features, r], float32
};

struct Adapter {
  std::string path;         // The safetensors file.
  std::string fingerprint;  // sha256 of the file bytes and the effective config.
  AdapterConfig config;
  // lora[layer][module name, e.g. "q_proj"]; empty when loaded without LoRA (decoder side).
  std::vector<std::map<std::string, LoraPair>> lora;
  at::Tensor memory_embed;  // [mem_size + 3, hidden], float32

  // Row `mem_size + token` of memory_embed: [hidden].
  at::Tensor SpecialEmbedding(SpecialToken token) const;
  // Rows 0..mem_size-1: [mem_size, hidden].
  at::Tensor MemoryEmbeddings() const;
};

// "append" / "uniform", as adapter_config.json spells them.
absl::string_view MemoryPositionsName(MemoryPositions p);
absl::StatusOr<MemoryPositions> ParseMemoryPositions(absl::string_view name);

// Loads and validates an adapter against `model`. With `with_lora` false only memory_token_embed
// is read (the decoder never needs the LoRA), but every tensor name is still validated.
absl::StatusOr<Adapter> LoadAdapter(const std::string& path, const ModelConfig& model,
                                    bool with_lora);

// The (in, out) features of a target module in `model`; InvalidArgument for an unknown module.
absl::StatusOr<std::pair<int, int>> ModuleShape(const ModelConfig& model,
                                                const std::string& module);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_ADAPTER_H_
