// Per-sequence key/value cache. Owned by the caller (one per request), never by the model, so the
// model stays immutable and shareable across threads. Not thread-safe itself.
#ifndef ICAE_COMMON_MODEL_KV_CACHE_H_
#define ICAE_COMMON_MODEL_KV_CACHE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "common/model/model_config.h"

namespace icae {

class KVCache {
 public:
  // Room for `capacity` positions; grows (by copying) when a longer sequence needs more.
  KVCache(const ModelConfig& config, int64_t capacity, at::TensorOptions options);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  // Bytes held by the key and value tensors.
  int64_t bytes() const;

  // Makes room for `extra` more positions.
  void Reserve(int64_t extra);
  // Writes k, v [kv_heads, n, head_dim] of `layer` at positions [length, length + n).
  // Call for every layer, then Advance(n).
  void Write(int layer, const at::Tensor& k, const at::Tensor& v);
  void Advance(int64_t n) { length_ += n; }
  // Keys / values of `layer` for positions [begin, end): [kv_heads, end - begin, head_dim].
  at::Tensor Keys(int layer, int64_t begin, int64_t end) const;
  at::Tensor Values(int layer, int64_t begin, int64_t end) const;
  // The whole storage of `layer`: [kv_heads, capacity, head_dim], contiguous (for kernels).
  const at::Tensor& KeyStorage(int layer) const { return keys_[layer]; }
  const at::Tensor& ValueStorage(int layer) const { return values_[layer]; }

 private:
  std::vector<at::Tensor> keys_;    // per layer: [kv_heads, capacity, head_dim]
  std::vector<at::Tensor> values_;  // per layer: [kv_heads, capacity, head_dim]
  int64_t length_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_KV_CACHE_H_
