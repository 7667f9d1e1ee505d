// icae-train cross: the trainables of a cross-model encoder (common/model/cross_encoder.h) -- a
// small Llama-architecture model (all its weights), its memory rows, the projector into the
// frozen decoder's embedding space and the decoder-side AE/LM/FT rows -- and the encoder pass the
// pretraining task differentiates through. The pass is the serving one (EncodeSegmentBatch, then
// ProjectSlots, as Compressor runs them), so what is trained is what is served.
#ifndef ICAE_TOOLS_TRAIN_CROSS_SETUP_H_
#define ICAE_TOOLS_TRAIN_CROSS_SETUP_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/flags.h"
#include "common/model/cross_encoder.h"
#include "common/model/model_config.h"
#include "common/model/weights.h"
#include "tools/train/icae_tasks.h"

namespace icae::train {


// float32 leaves with requires_grad (the encoder's lm_head is not among them: it is never used).
struct CrossTrainables {
  CrossEncoderConfig config;  // The fingerprints are filled in at export.
  ModelConfig encoder_config;
  TransformerWeights encoder;
  at::Tensor memory_rows;  // [mem, encoder_hidden]
  at::Tensor special;      // [3, decoder_hidden]
  std::vector<at::Tensor> projector;

  std::vector<at::Tensor> Parameters() const;
};

// A new cross encoder for `decoder` (whose input embeddings have standard deviation
// `decoder_embed_std`): the small model from options, memory rows ~ N(0, its embedding std),
// special rows ~ N(0, decoder_embed_std), the projector as nn.Linear initialises it except the
// last map, scaled so that its output starts at the decoder's embedding scale. Deterministic in
// `seed`.
absl::StatusOr<CrossTrainables> InitCross(const CrossOptions& options, const ModelConfig& decoder,
                                          double decoder_embed_std, int mem_size, int rate,
                                          MemoryPositions positions, uint64_t seed);
// From a package (its encoder model included), to train further.
absl::StatusOr<CrossTrainables> CrossFromPackage(const std::string& dir);

// Slots of every context by the multi-span rule, [num_segments_i * mem, decoder_hidden] in
// `dtype`, differentiable w.r.t. the trainables.
std::vector<at::Tensor> EncodeCrossContexts(const CrossTrainables& cross, at::ScalarType dtype,
                                            const std::vector<std::vector<int>>& contexts);

// Writes the package: <dir>/encoder (the small model in `dtype`, with `tokenizer_path` copied
// beside it) and cross_encoder.json/.safetensors with both fingerprints.
absl::Status ExportCross(const std::string& dir, const CrossTrainables& cross,
                         const std::string& decoder_dir, const std::string& tokenizer_path,
                         at::ScalarType dtype);

// Forward + backward FLOPs of the small encoder (its weights train) for `positions` positions.
double CrossEncoderFlops(const CrossTrainables& cross, int64_t batch, int64_t positions);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_CROSS_SETUP_H_
