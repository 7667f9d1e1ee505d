#include "common/model/kv_block_pool.h"

#include <c10/util/Exception.h>

#include <limits>

namespace icae {

KvBlockPool::KvBlockPool(const ModelConfig& config, int64_t blocks, int64_t block_tokens,
                         at::TensorOptions options)
    : block_tokens_(block_tokens), total_blocks_(blocks) {
  TORCH_CHECK(block_tokens >= 1 && blocks >= 1 && blocks <= std::numeric_limits<int32_t>::max(),
              "KvBlockPool: ", blocks, " blocks of ", block_tokens, " positions");
  // One tensor per layer and kind rather than one for the whole pool: each is a separate mapping,
  // which the kernel's overcommit heuristics judge one at a time.
  for (int l = 0; l < config.num_layers; ++l) {
    keys_.push_back(at::empty({config.num_kv_heads, blocks, block_tokens, config.head_dim}, options));
    values_.push_back(
        at::empty({config.num_kv_heads, blocks, block_tokens, config.head_dim}, options));
  }
  block_bytes_ = 2 * int64_t{config.num_layers} * config.num_kv_heads * block_tokens *
                 config.head_dim * static_cast<int64_t>(c10::elementSize(
                                       c10::typeMetaToScalarType(options.dtype())));
  free_.reserve(blocks);
  // Handed out from block 0 up, so a lightly used pool touches the start of each tensor only.
  for (int64_t b = blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t KvBlockPool::free_blocks() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(free_.size());
}

bool KvBlockPool::Allocate(int64_t n, std::vector<int32_t>* out) {
  absl::MutexLock lock(&mu_);
  if (n > static_cast<int64_t>(free_.size())) return false;
  for (int64_t i = 0; i < n; ++i) {
    out->push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvBlockPool::Free(const std::vector<int32_t>& blocks) {
  absl::MutexLock lock(&mu_);
  // Last first, so that the next Allocate takes them in the order they were held: a cache's run
  // of consecutive ids passes to the next cache as a run (read as one stretch by the kernel).
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    TORCH_CHECK(*it >= 0 && *it < total_blocks_ &&
                    free_.size() < static_cast<size_t>(total_blocks_),
                "KvBlockPool::Free: block ", *it, " is not a held block of this pool");
    free_.push_back(*it);
  }
}

}  // namespace icae
