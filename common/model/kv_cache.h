// Per-sequence key/value cache. Owned by the caller (one per request), never by the model, so the
// model stays immutable and shareable across threads. Not thread-safe itself.
//
// A cache may continue a shared, read-only prefix (another cache, frozen once complete): its
// positions [0, prefix_length()) are read from the prefix and only the later ones are stored
// here, so any number of sequences share one prefix's KV without copying it (slot-prefix reuse:
// many questions over the same compressed documents). Positions are global: Keys(l, b, e) and
// length() count the prefix's positions too.
#ifndef ICAE_COMMON_MODEL_KV_CACHE_H_
#define ICAE_COMMON_MODEL_KV_CACHE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/model/model_config.h"

namespace icae {

class KVCache {
 public:
  // Room for `capacity` positions of its own (after the prefix's); grows (by copying) when a
  // longer sequence needs more. `prefix` may be null; it is never written through this cache.
  KVCache(const ModelConfig& config, int64_t capacity, at::TensorOptions options,
          std::shared_ptr<const KVCache> prefix = nullptr);

  // Bytes one position takes in every layer's keys and values.
  static int64_t BytesPerPosition(const ModelConfig& config, at::ScalarType dtype);

  // Positions held, the prefix's included.
  int64_t length() const { return prefix_length_ + length_; }
  // Positions read from the shared prefix (0 without one).
  int64_t prefix_length() const { return prefix_length_; }
  const std::shared_ptr<const KVCache>& prefix() const { return prefix_; }
  // Own positions this cache can hold before it grows.
  int64_t capacity() const { return capacity_; }
  // Bytes held by this cache's own key and value tensors (not the shared prefix's).
  int64_t bytes() const;

  // Makes room for `extra` more positions (at least doubling the capacity when it grows).
  void Reserve(int64_t extra);
  // Sets the own capacity to exactly `capacity` (>= the own positions held; copies when it
  // changes), for callers that account KV memory position by position.
  void SetCapacity(int64_t capacity);
  // Writes k, v [kv_heads, n, head_dim] of `layer` at positions [length, length + n).
  // Call for every layer, then Advance(n).
  void Write(int layer, const at::Tensor& k, const at::Tensor& v);
  void Advance(int64_t n) { length_ += n; }
  // Keys / values of `layer` for global positions [begin, end), which must lie either all in the
  // prefix or all after it: [kv_heads, end - begin, head_dim] (a view, no copy).
  at::Tensor Keys(int layer, int64_t begin, int64_t end) const;
  at::Tensor Values(int layer, int64_t begin, int64_t end) const;
  // This cache's own storage of `layer`: [kv_heads, capacity, head_dim], contiguous (for
  // kernels); index i holds global position prefix_length() + i.
  const at::Tensor& KeyStorage(int layer) const { return keys_[layer]; }
  const at::Tensor& ValueStorage(int layer) const { return values_[layer]; }

 private:
  std::vector<at::Tensor> keys_;    // per layer: [kv_heads, capacity, head_dim]
  std::vector<at::Tensor> values_;  // per layer: [kv_heads, capacity, head_dim]
  std::shared_ptr<const KVCache> prefix_;
  int64_t prefix_length_ = 0;
  int64_t length_ = 0;  // Own positions written.
  int64_t capacity_ = 0;
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_KV_CACHE_H_
