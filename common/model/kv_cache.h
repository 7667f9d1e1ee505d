// Per-sequence key/value cache. Owned by the caller (one per request), never by the model, so the
// model stays immutable and shareable across threads. Not thread-safe itself.
//
// A cache may continue a shared, read-only prefix (another cache, frozen once complete): its
// positions [0, prefix_length()) are read from the prefix and only the later ones are stored
// here, so any number of sequences share one prefix's KV without copying it (slot-prefix reuse:
// many questions over the same compressed documents). Positions are global: Keys(l, b, e) and
// length() count the prefix's positions too.
//
// Its own positions live either in tensors of its own ([kv_heads, capacity, head_dim] per layer,
// grown by copying: the offline paths) or in blocks of a KvBlockPool (the decoder engine: grown by
// taking blocks, never copied, given back when the cache is destroyed; capacity is a whole number
// of blocks). Move-only.
#ifndef ICAE_COMMON_MODEL_KV_CACHE_H_
#define ICAE_COMMON_MODEL_KV_CACHE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/model/kv_block_pool.h"
#include "common/model/model_config.h"

namespace icae {

class KVCache {
 public:
  // Room for `capacity` positions of its own (after the prefix's); grows (by copying) when a
  // longer sequence needs more. `prefix` may be null; it is never written through this cache.
  KVCache(const ModelConfig& config, int64_t capacity, at::TensorOptions options,
          std::shared_ptr<const KVCache> prefix = nullptr);
  // Own positions in `pool`'s blocks: room for `capacity` (rounded up to blocks; 0 takes none).
  // Throws (c10::Error) when the pool has too few free blocks.
  KVCache(const ModelConfig& config, std::shared_ptr<KvBlockPool> pool, int64_t capacity,
          std::shared_ptr<const KVCache> prefix = nullptr);
  KVCache(KVCache&& other) noexcept;
  KVCache& operator=(KVCache&& other) noexcept;
  ~KVCache();

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

  // Makes room for `extra` more positions (own tensors: at least doubling the capacity when they
  // grow; blocks: just the blocks needed).
  void Reserve(int64_t extra);
  // Sets the own capacity to exactly `capacity` (>= the own positions held), for callers that
  // account KV memory position by position: own tensors are copied when it changes; with blocks it
  // rounds up to whole blocks, takes the missing ones or gives back those past it. Throws when the
  // pool has too few free blocks.
  void SetCapacity(int64_t capacity);
  // Writes k, v [kv_heads, n, head_dim] of `layer` at positions [length, length + n).
  // Call for every layer, then Advance(n).
  void Write(int layer, const at::Tensor& k, const at::Tensor& v);
  void Advance(int64_t n) { length_ += n; }
  // Keys / values of `layer` for global positions [begin, end), which must lie either all in the
  // prefix or all after it: [kv_heads, end - begin, head_dim] (a view, no copy).
  at::Tensor Keys(int layer, int64_t begin, int64_t end) const;
  at::Tensor Values(int layer, int64_t begin, int64_t end) const;
  // This cache's own storage of `layer` (for kernels); index i holds global position
  // prefix_length() + i. Own tensors: [kv_heads, capacity, head_dim], contiguous. Blocks: the
  // pool's [kv_heads, blocks, block_tokens, head_dim], index i in block blocks()[i / block_tokens]
  // at i % block_tokens.
  const at::Tensor& KeyStorage(int layer) const;
  const at::Tensor& ValueStorage(int layer) const;
  // The pool of a block cache (null for own tensors) and its blocks in position order.
  const KvBlockPool* pool() const { return pool_.get(); }
  const std::vector<int32_t>& blocks() const { return blocks_; }

 private:
  // Own positions [begin, end) of `layer`'s keys (or values): a view when they lie in one tensor
  // or block, else a copy gathered from the blocks.
  at::Tensor Own(bool keys, int layer, int64_t begin, int64_t end) const;
  void ReleaseBlocks();

  std::vector<at::Tensor> keys_;    // Own tensors per layer: [kv_heads, capacity, head_dim]
  std::vector<at::Tensor> values_;  // (empty for a block cache)
  std::shared_ptr<KvBlockPool> pool_;
  std::vector<int32_t> blocks_;
  std::shared_ptr<const KVCache> prefix_;
  int64_t prefix_length_ = 0;
  int64_t length_ = 0;  // Own positions written.
  int64_t capacity_ = 0;
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_KV_CACHE_H_
