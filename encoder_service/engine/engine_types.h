// Plain request and result types of the encoder engine (no gRPC, no LibTorch): what the server
// layer converts CompressRequest / CompressResponse from and to.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_ENGINE_TYPES_H_
#define ICAE_ENCODER_SERVICE_ENGINE_ENGINE_TYPES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/dtype.h"
#include "common/base/slot_kind.h"

namespace icae::encoder {

// One span: text (tokenized with BOS) or token ids (used verbatim).
struct SpanInput {
  enum class Kind { kUnset, kText, kTokenIds };
  std::string id;  // caller's id, echoed back
  Kind kind = Kind::kUnset;
  std::string text;
  std::vector<int> token_ids;
};

struct EncodeRequest {
  std::vector<SpanInput> spans;
  // Dtype of the returned slots (a float dtype); nullopt = the compute dtype.
  std::optional<DType> slot_dtype;
  // Neither read nor write the slot cache (nor the shared store, unless `want_stored`).
  bool bypass_cache = false;
  // Every span's slots must end up in the shared store before the result (CompressRequest
  // return_handles); SpanResult.stored says which did. Needs a store (FailedPrecondition).
  bool want_stored = false;
  // Work still queued when this passes is dropped and the request ends with DEADLINE_EXCEEDED.
  absl::Time deadline = absl::InfiniteFuture();
};

// How a span's slots lie on the wire: `blocks` runs of [num_slots, row] elements, one after
// another. Embedding slots: one block, row = hidden (shape [num_slots, hidden]). KV slots:
// layers * 2 * kv_heads blocks, row = head_dim (shape [layers, 2, kv_heads, num_slots, head_dim]).
// INT8 scales: one per row, shaped like the tensor without its last dimension.
struct SlotGeometry {
  SlotKind kind = SlotKind::kEmbedding;
  std::vector<int64_t> lead;  // Dimensions before num_slots: {} or {layers, 2, kv_heads}.
  int64_t row = 0;            // Last dimension: hidden or head_dim.

  int64_t blocks() const {
    int64_t n = 1;
    for (int64_t d : lead) n *= d;
    return n;
  }
  int64_t elements_per_slot() const { return blocks() * row; }
  // Wire shape of `num_slots` slots, and of their INT8 scales.
  std::vector<int64_t> ScaleShape(int64_t num_slots) const {
    std::vector<int64_t> shape = lead;
    shape.push_back(num_slots);
    return shape;
  }
  std::vector<int64_t> Shape(int64_t num_slots) const {
    std::vector<int64_t> shape = ScaleShape(num_slots);
    shape.push_back(row);
    return shape;
  }
};

// Slots of one span in their wire layout (SlotGeometry) as little-endian elements of `dtype`;
// for kInt8 also the float32 row scales in `scales` (see common/codec/tensor_codec.h). The bytes
// are immutable and may be shared with the slot cache.
struct SlotBlock {
  DType dtype = DType::kFloat32;
  int64_t num_slots = 0;
  std::shared_ptr<const std::string> data;
  std::shared_ptr<const std::string> scales;  // kInt8 only
  int64_t bytes() const {
    return static_cast<int64_t>((data ? data->size() : 0) + (scales ? scales->size() : 0));
  }
};

struct SpanResult {
  std::string id;
  SlotBlock slots;
  int tokens = 0;    // tokens of the span (after tokenization)
  int segments = 0;  // segments it was cut into
  bool cache_hit = false;
  bool store_hit = false;  // from the shared store (a miss in the local cache)
  // In the shared store under `store_key` (a handle to them works): set for a request with
  // want_stored when the store took them.
  bool stored = false;
  std::string store_key;
};

struct EncodeResult {
  std::vector<SpanResult> spans;  // request order
  // Wall clock: enqueue -> first batch start, and first batch start -> last batch end. Zero for
  // a request served entirely from the cache.
  double queue_seconds = 0;
  double compute_seconds = 0;
};

// Called exactly once per accepted request, from an engine thread (or the thread that enqueued
// or cancelled it). Must not block.
using EncodeCallback = std::function<void(absl::StatusOr<EncodeResult>)>;

using RequestId = uint64_t;

// What the engine knows about the loaded model (for GetInfo and metrics labels).
struct EngineModelInfo {
  std::string base_model;    // model directory name
  std::string architecture;  // from config.json
  std::string adapter;       // adapter file name
  std::string encoder_id;
  int hidden_size = 0;  // Width of an embedding slot (the decoder's hidden size).
  int encoder_hidden_size = 0;  // The encoding model's own.
  bool cross = false;           // A cross-model encoder (common/model/cross_encoder.h).
  std::string decoder_base_fingerprint;
  int vocab_size = 0;
  SlotGeometry slots;
  int mem_size = 0;
  int compression_rate = 0;
  int max_position_embeddings = 0;
  DType compute_dtype = DType::kFloat32;
  std::string device;  // "cpu", "cuda:0"
  bool has_tokenizer = false;
  int max_segment_tokens() const { return mem_size * compression_rate; }
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_ENGINE_TYPES_H_
