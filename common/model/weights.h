// The weights of a Llama/Mistral decoder in serving layout: q/k/v fused into one matrix and
// gate/up into another (one GEMM each), every matrix [out_features, in_features] as in nn.Linear
// (y = x W^T), in the compute dtype on the compute device.
#ifndef ICAE_COMMON_MODEL_WEIGHTS_H_
#define ICAE_COMMON_MODEL_WEIGHTS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/adapter.h"
#include "common/model/model_config.h"

namespace icae {

struct LayerWeights {
  at::Tensor input_norm;  // [hidden]
  at::Tensor wqkv;        // [q_dim + 2 * kv_dim, hidden]: rows q, then k, then v.
  at::Tensor wo;          // [hidden, q_dim]
  at::Tensor post_norm;   // [hidden]
  at::Tensor w_gate_up;   // [2 * intermediate, hidden]: rows gate, then up.
  at::Tensor w_down;      // [hidden, intermediate]
};

struct TransformerWeights {
  at::Tensor embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  at::Tensor final_norm;  // [hidden]
  at::Tensor lm_head;     // [vocab, hidden]; the same tensor as `embed` when tied.

  // Every tensor, in a fixed order (for optimizers and checksums); lm_head only when untied.
  std::vector<at::Tensor> Parameters(bool tied) const;
};

// Reads the HF tensors of `dir` (single or sharded safetensors), merges `lora` (W + scaling B A,
// computed in float32) when given, fuses, and converts to `dtype` on `device`. Unknown tensors
// (biases, other architectures' names) are InvalidArgument naming the tensor.
absl::StatusOr<TransformerWeights> LoadWeights(const std::string& dir, const ModelConfig& config,
                                               const Adapter* lora, at::ScalarType dtype,
                                               at::Device device);

// `f` applied to every tensor, in the Parameters() order; lm_head stays the same tensor as embed
// when `tied`.
TransformerWeights MapWeights(const TransformerWeights& weights, bool tied,
                              const std::function<at::Tensor(const at::Tensor&)>& f);

// Owned, writable copies of every tensor (a float32 file may be mapped read-only); lm_head stays
// the same tensor as embed when `tied`.
TransformerWeights CloneWeights(const TransformerWeights& weights, bool tied);

// Random initialisation as HF does for training from scratch: N(0, std) for matrices and
// embeddings, ones for norms. Deterministic for a given seed. float32 on the CPU.
TransformerWeights RandomWeights(const ModelConfig& config, uint64_t seed, double std = 0.02);

// Writes `weights` as an HF model directory (config.json + model.safetensors, HF tensor names,
// q/k/v and gate/up split again) in `dtype`. Creates the directory if needed.
absl::Status SaveHfModel(const std::string& dir, const ModelConfig& config,
                         const TransformerWeights& weights, at::ScalarType dtype);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_WEIGHTS_H_
