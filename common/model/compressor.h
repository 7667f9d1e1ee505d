// The ICAE encoder: the base model with the adapter's LoRA merged into its own weights, plus the
// memory-token embeddings; or a cross-model encoder (common/model/cross_encoder.h): a small model
// plus a projector into the decoder's embedding space. Immutable after Load; Compress* may run
// concurrently from any thread.
#ifndef ICAE_COMMON_MODEL_COMPRESSOR_H_
#define ICAE_COMMON_MODEL_COMPRESSOR_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/adapter.h"
#include "common/model/cross_encoder.h"
#include "common/model/runtime_options.h"
#include "common/model/transformer.h"

namespace icae {

class Compressor {
 public:
  // `adapter_path` is an ICAE adapter of the base `model_dir`, or a cross-encoder package; then
  // `model_dir` is its encoder model (the one it was trained with: FailedPrecondition naming
  // both fingerprints otherwise), and when empty or the decoder base the package writes for,
  // the package's own encoder model directory.
  static absl::StatusOr<std::unique_ptr<Compressor>> Load(const std::string& model_dir,
                                                          const std::string& adapter_path,
                                                          const Runtime& runtime);

  // A cross encoder already loaded, over the model in `model_dir` (its fingerprint unchecked).
  static absl::StatusOr<std::unique_ptr<Compressor>> FromCross(const std::string& model_dir,
                                                               CrossEncoder cross,
                                                               const Runtime& runtime);

  // The encoding model's config (for a cross encoder, the small model's, not the decoder's).
  const ModelConfig& config() const { return transformer_->config(); }
  const AdapterConfig& adapter_config() const { return adapter_config_; }
  const Transformer& transformer() const { return *transformer_; }
  int mem_size() const { return adapter_config_.mem_size; }
  SlotKind slot_kind() const { return adapter_config_.slot_kind; }
  int compression_rate() const { return adapter_config_.compression_rate; }
  // Longest segment the multi-span rule produces: mem_size * rate tokens.
  int max_segment_tokens() const { return mem_size() * compression_rate(); }
  const std::string& encoder_id() const { return encoder_id_; }
  const std::string& adapter_path() const { return adapter_path_; }
  // The encoding model's directory.
  const std::string& model_dir() const { return model_dir_; }
  // A cross-model encoder (a small model + projector) rather than ICAE's LoRA on the decoder's base.
  bool is_cross() const { return !projector_.empty(); }
  // Width of an embedding slot: the decoder's hidden size (the model's own for ICAE).
  int slot_width() const { return slot_width_; }
  // BaseModelFingerprint of the decoder base the slots are for (for ICAE, its own base).
  const std::string& decoder_fingerprint() const { return decoder_fingerprint_; }

  // Compresses independent segments (each 1..any tokens, ids in [0, vocab)) as one right-padded
  // batch. Returns [segments, mem_size, slot_width] (embedding slots) or [segments, layers, 2,
  // kv_heads, mem_size, head_dim] (KV slots) in the compute dtype on the model's device.
  // Equal to compressing each alone (within float rounding).
  absl::StatusOr<at::Tensor> CompressSegments(absl::Span<const std::vector<int>> segments) const;

  // A whole span by the multi-span rule: [num_segments * mem_size, hidden], or for KV slots
  // [layers, 2, kv_heads, num_segments * mem_size, head_dim].
  absl::StatusOr<at::Tensor> CompressSpan(const std::vector<int>& ids) const;

 private:
  Compressor() = default;
  std::unique_ptr<Transformer> transformer_;
  AdapterConfig adapter_config_;
  std::string adapter_path_;
  std::string model_dir_;
  at::Tensor memory_rows_;  // [mem_size, hidden], compute dtype
  std::string encoder_id_;
  int slot_width_ = 0;
  std::string decoder_fingerprint_;
  ProjectorKind projector_kind_ = ProjectorKind::kLinear;
  std::vector<at::Tensor> projector_;  // Cross encoders only, compute dtype.
};

// The ICAE encoder pass, shared by serving (Compressor) and training (tools/train): every row of
// the right-padded batch is [segment tokens][memory rows][padding], token positions restart at 0
// in each row, memory positions follow `layout` (see MemoryPositions), and the slots are the
// final-normed hidden states at the memory rows ([segments, mem, hidden]) or, for KV slots, every
// layer's keys and values there ([segments, layers, 2, kv_heads, mem, head_dim]), in the model's
// dtype. `memory_rows` is [mem, hidden]; `lora` adds
// unmerged LoRA (training; serving merges it into the weights). Differentiable when autograd is
// on. Segments must be non-empty with ids already validated.
at::Tensor EncodeSegmentBatch(const Transformer& model, const at::Tensor& memory_rows,
                              absl::Span<const std::vector<int>> segments,
                              MemoryPositions layout = MemoryPositions::kAppend,
                              const LoraWeights* lora = nullptr,
                              SlotKind kind = SlotKind::kEmbedding);

// The slots of a span's segments (EncodeSegmentBatch's output) joined in order along the slot
// axis: [segments * mem, hidden] or [layers, 2, kv_heads, segments * mem, head_dim].
at::Tensor JoinSegmentSlots(const at::Tensor& slots, SlotKind kind);

// RoPE positions of the memory rows after a segment of `len` tokens: [mem] int64.
std::vector<int64_t> MemoryPositionIds(int64_t len, int64_t mem, MemoryPositions layout);

// Checks ids against the vocabulary; InvalidArgument names `what`, the index and the id.
absl::Status ValidateTokenIds(absl::Span<const int> ids, int vocab_size, absl::string_view what);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_COMPRESSOR_H_
