// One pool of fixed-size KV blocks shared by many caches (the decoder engine's --max_kv_tokens):
// every layer's keys and values live in one tensor each, [kv_heads, blocks, block_tokens,
// head_dim] (a head's consecutive blocks are contiguous), allocated once when the pool is made, so the KV memory of a server is the pool's and
// nothing else however requests come and go: a cache grows by taking blocks (never by copying)
// and gives them back when it is destroyed. The tensors are allocated untouched, so the resident
// memory is the high-water mark of the blocks ever used, never more than the pool.
//
// Thread-safe: Allocate and Free may be called from any thread (caches are destroyed where their
// last owner lets go). Reading and writing a block's contents is the owner's business.
#ifndef ICAE_COMMON_MODEL_KV_BLOCK_POOL_H_
#define ICAE_COMMON_MODEL_KV_BLOCK_POOL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/model/model_config.h"

namespace icae {

class KvBlockPool {
 public:
  // `blocks` blocks of `block_tokens` positions each, for every layer of `config`.
  KvBlockPool(const ModelConfig& config, int64_t blocks, int64_t block_tokens,
              at::TensorOptions options);
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  int64_t block_tokens() const { return block_tokens_; }
  int64_t total_blocks() const { return total_blocks_; }
  int64_t free_blocks() const;
  // Bytes of one block in every layer's keys and values.
  int64_t block_bytes() const { return block_bytes_; }

  // Appends `n` free block ids to `out` and returns true, or returns false and takes none when
  // fewer than `n` are free.
  bool Allocate(int64_t n, std::vector<int32_t>* out);
  // Gives blocks back (each exactly once); the next Allocate takes them in this order.
  void Free(const std::vector<int32_t>& blocks);

  // Layer `layer`'s storage: [kv_heads, blocks, block_tokens, head_dim], contiguous.
  const at::Tensor& keys(int layer) const { return keys_[layer]; }
  const at::Tensor& values(int layer) const { return values_[layer]; }

 private:
  const int64_t block_tokens_;
  const int64_t total_blocks_;
  int64_t block_bytes_ = 0;
  std::vector<at::Tensor> keys_, values_;
  mutable absl::Mutex mu_;
  std::vector<int32_t> free_ ABSL_GUARDED_BY(mu_);  // A stack: the last freed is reused first.
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_KV_BLOCK_POOL_H_
