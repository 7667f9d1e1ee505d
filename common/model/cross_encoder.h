// A cross-model encoder (MEND / xRAG / REFRAG style): a small Llama-architecture model reads
// [segment tokens][memory rows] as an ICAE encoder does, and a projector maps its final-normed
// hidden states at the memory rows into the decoder's embedding space. The decoder reads the
// projected slots as embedding slots, exactly as it reads ICAE's. Compressing then costs the
// small model's FLOPs, not the decoder's.
//
// A package is a directory:
//   cross_encoder.json         {"format": "icae-cross-encoder", "mem_size", "compression_rate",
//                               "memory_position_layout", "projector": "linear" | "mlp",
//                               "encoder_hidden_size", "projector_hidden_size" (mlp),
//                               "decoder_hidden_size", "encoder_model_fingerprint",
//                               "decoder_base_fingerprint", "encoder_model" (a relative path),
//                               "encoder_weights_sha256" (optional)}
//   cross_encoder.safetensors  memory_embed [mem_size, encoder_hidden]
//                              special_embed [3, decoder_hidden]  (AE, LM, FT: decoder inputs)
//                              projector.0.weight [out0, encoder_hidden], projector.0.bias [out0]
//                              projector.2.weight [decoder_hidden, out0], projector.2.bias (mlp;
//                              GELU between, the nn.Sequential names). Linear: out0 = decoder
//                              hidden and no projector.2.
//   encoder/                   the small model (config.json, model.safetensors, tokenizer.model)
// The fingerprints tie the package to the encoder model it was trained with and to the decoder
// base it writes for: the encoder service refuses another encoder model and a decoder refuses
// the package unless its own base has that fingerprint. A base fingerprint hashes config.json and
// the safetensors headers only (fast for a 7B base); a small encoder's weights are cheap to hash
// whole, so encoder_weights_sha256 also pins its bytes (a retrained model of the same shape is
// refused too). Slots carry
// encoder_id = EncoderId(encoder model fingerprint, package fingerprint).
#ifndef ICAE_COMMON_MODEL_CROSS_ENCODER_H_
#define ICAE_COMMON_MODEL_CROSS_ENCODER_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/adapter.h"

namespace icae {

inline constexpr char kCrossEncoderConfigFile[] = "cross_encoder.json";
inline constexpr char kCrossEncoderWeightsFile[] = "cross_encoder.safetensors";

// True when `path` is a directory holding cross_encoder.json.
bool IsCrossEncoderPackage(const std::string& path);

enum class ProjectorKind { kLinear, kMlp };
absl::string_view ProjectorKindName(ProjectorKind kind);
absl::StatusOr<ProjectorKind> ParseProjectorKind(absl::string_view name);

struct CrossEncoderConfig {
  int mem_size = 0;          // Slots per segment.
  int compression_rate = 4;  // Tokens per slot.
  MemoryPositions memory_positions = MemoryPositions::kAppend;
  ProjectorKind projector = ProjectorKind::kMlp;
  int encoder_hidden = 0;
  int projector_hidden = 0;  // Mlp only: the width between the two linear maps.
  int decoder_hidden = 0;
  std::string encoder_fingerprint;  // BaseModelFingerprint of the encoder model.
  std::string decoder_fingerprint;  // BaseModelFingerprint of the decoder base.
  std::string encoder_model = "encoder";  // The encoder model's directory, relative to the package.
  std::string encoder_weights_sha256;     // ModelWeightsSha256 of it; empty: not recorded.
};

// sha256 over the bytes of every safetensors file of a model directory (shards in name order).
absl::StatusOr<std::string> ModelWeightsSha256(const std::string& model_dir);

struct CrossEncoder {
  std::string path;         // The package directory.
  std::string fingerprint;  // sha256 of the weights file and the config that interprets it.
  CrossEncoderConfig config;
  at::Tensor memory_rows;  // [mem_size, encoder_hidden], float32
  at::Tensor special;      // [3, decoder_hidden], float32: AE, LM, FT
  // linear: {w0, b0}; mlp: {w0, b0, w2, b2} (float32, [out, in] and [out]).
  std::vector<at::Tensor> projector;

  // The id its slots carry.
  std::string encoder_id() const;
  // The encoder model's directory (config.encoder_model under the package).
  std::string encoder_model_dir() const;
  // The segment plan and memory layout as an adapter config (embedding slots, no LoRA).
  AdapterConfig AsAdapterConfig() const;
};

// Maps encoder hidden states [..., encoder_hidden] into the decoder's space [..., decoder_hidden]
// with `params` in x's dtype (linear: x W0^T + b0; mlp: GELU(x W0^T + b0) W2^T + b2, exact GELU).
// Differentiable.
at::Tensor ProjectSlots(ProjectorKind kind, const std::vector<at::Tensor>& params,
                        const at::Tensor& x);

// Reads and validates a package (config fields, every tensor's name and shape, finite values).
// InvalidArgument names the file and the field or tensor.
absl::StatusOr<CrossEncoder> LoadCrossEncoder(const std::string& dir);

// Writes cross_encoder.json and cross_encoder.safetensors (float32) into `dir` (created if
// needed); the encoder model directory is written by the caller.
absl::Status SaveCrossEncoder(const std::string& dir, const CrossEncoder& cross);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_CROSS_ENCODER_H_
