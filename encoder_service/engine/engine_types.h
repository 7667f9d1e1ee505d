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
  // Neither read nor write the slot cache.
  bool bypass_cache = false;
  // Work still queued when this passes is dropped and the request ends with DEADLINE_EXCEEDED.
  absl::Time deadline = absl::InfiniteFuture();
};

// Slots of one span: [num_slots, hidden] row-major little-endian elements of `dtype`. `data` is
// immutable and may be shared with the slot cache.
struct SlotBlock {
  DType dtype = DType::kFloat32;
  int64_t num_slots = 0;
  int64_t hidden = 0;
  std::shared_ptr<const std::string> data;
};

struct SpanResult {
  std::string id;
  SlotBlock slots;
  int tokens = 0;    // tokens of the span (after tokenization)
  int segments = 0;  // segments it was cut into
  bool cache_hit = false;
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
  int hidden_size = 0;
  int vocab_size = 0;
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
