#include "common/model/kv_cache.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <utility>

namespace icae {

KVCache::KVCache(const ModelConfig& config, int64_t capacity, at::TensorOptions options,
                 std::shared_ptr<const KVCache> prefix)
    : prefix_(std::move(prefix)),
      prefix_length_(prefix_ != nullptr ? prefix_->length() : 0),
      capacity_(std::max<int64_t>(capacity, 1)) {
  for (int l = 0; l < config.num_layers; ++l) {
    keys_.push_back(at::empty({config.num_kv_heads, capacity_, config.head_dim}, options));
    values_.push_back(at::empty({config.num_kv_heads, capacity_, config.head_dim}, options));
  }
}

KVCache::KVCache(const ModelConfig& config, std::shared_ptr<KvBlockPool> pool, int64_t capacity,
                 std::shared_ptr<const KVCache> prefix)
    : pool_(std::move(pool)),
      prefix_(std::move(prefix)),
      prefix_length_(prefix_ != nullptr ? prefix_->length() : 0) {
  TORCH_CHECK(pool_ != nullptr, "KVCache: a block cache needs its pool");
  SetCapacity(capacity);
}

KVCache::KVCache(KVCache&& other) noexcept
    : keys_(std::move(other.keys_)),
      values_(std::move(other.values_)),
      pool_(std::move(other.pool_)),
      blocks_(std::move(other.blocks_)),
      prefix_(std::move(other.prefix_)),
      prefix_length_(other.prefix_length_),
      length_(other.length_),
      capacity_(other.capacity_) {
  other.blocks_.clear();
  other.pool_.reset();
  other.length_ = other.capacity_ = 0;
}

KVCache& KVCache::operator=(KVCache&& other) noexcept {
  if (this == &other) return *this;
  ReleaseBlocks();
  keys_ = std::move(other.keys_);
  values_ = std::move(other.values_);
  pool_ = std::move(other.pool_);
  blocks_ = std::move(other.blocks_);
  prefix_ = std::move(other.prefix_);
  prefix_length_ = other.prefix_length_;
  length_ = other.length_;
  capacity_ = other.capacity_;
  other.blocks_.clear();
  other.pool_.reset();
  other.length_ = other.capacity_ = 0;
  return *this;
}

KVCache::~KVCache() { ReleaseBlocks(); }

void KVCache::ReleaseBlocks() {
  if (pool_ != nullptr && !blocks_.empty()) pool_->Free(blocks_);
  blocks_.clear();
}

int64_t KVCache::BytesPerPosition(const ModelConfig& config, at::ScalarType dtype) {
  return 2 * static_cast<int64_t>(config.num_layers) * config.num_kv_heads * config.head_dim *
         static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t KVCache::bytes() const {
  if (pool_ != nullptr) return static_cast<int64_t>(blocks_.size()) * pool_->block_bytes();
  int64_t total = 0;
  for (const at::Tensor& t : keys_) total += t.numel() * t.element_size();
  for (const at::Tensor& t : values_) total += t.numel() * t.element_size();
  return total;
}

void KVCache::Reserve(int64_t extra) {
  const int64_t needed = length_ + extra;
  if (needed <= capacity_) return;
  SetCapacity(pool_ != nullptr ? needed : std::max(needed, capacity_ * 2));
}

void KVCache::SetCapacity(int64_t capacity) {
  TORCH_CHECK(capacity >= length_ && capacity >= 0, "KVCache::SetCapacity: ", capacity,
              " positions cannot hold the ", length_, " written");
  if (pool_ != nullptr) {
    const int64_t block = pool_->block_tokens();
    const int64_t want = (capacity + block - 1) / block;
    const int64_t have = static_cast<int64_t>(blocks_.size());
    if (want > have) {
      TORCH_CHECK(pool_->Allocate(want - have, &blocks_), "KVCache: the KV pool has fewer than ",
                  want - have, " free blocks of ", block, " positions (",
                  pool_->free_blocks(), " free of ", pool_->total_blocks(), ")");
    } else if (want < have) {
      std::vector<int32_t> spare(blocks_.begin() + want, blocks_.end());
      blocks_.resize(want);
      pool_->Free(spare);
    }
    capacity_ = want * block;
    return;
  }
  capacity = std::max<int64_t>(capacity, 1);
  if (capacity == capacity_) return;
  for (auto* tensors : {&keys_, &values_}) {
    for (at::Tensor& t : *tensors) {
      at::Tensor resized = at::empty({t.size(0), capacity, t.size(2)}, t.options());
      resized.narrow(1, 0, length_).copy_(t.narrow(1, 0, length_));
      t = resized;
    }
  }
  capacity_ = capacity;
}

void KVCache::Write(int layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t n = k.size(1);
  TORCH_CHECK(length_ + n <= capacity_, "KVCache::Write: ", n, " positions after ", length_,
              " exceed the capacity ", capacity_);
  if (pool_ == nullptr) {
    keys_[layer].narrow(1, length_, n).copy_(k);
    values_[layer].narrow(1, length_, n).copy_(v);
    return;
  }
  const int64_t block = pool_->block_tokens();
  for (int64_t i = 0; i < n;) {
    const int64_t index = length_ + i, offset = index % block;
    const int64_t m = std::min(n - i, block - offset);
    const int32_t id = blocks_[index / block];
    pool_->keys(layer).select(1, id).narrow(1, offset, m).copy_(k.narrow(1, i, m));
    pool_->values(layer).select(1, id).narrow(1, offset, m).copy_(v.narrow(1, i, m));
    i += m;
  }
}

const at::Tensor& KVCache::KeyStorage(int layer) const {
  return pool_ != nullptr ? pool_->keys(layer) : keys_[layer];
}

const at::Tensor& KVCache::ValueStorage(int layer) const {
  return pool_ != nullptr ? pool_->values(layer) : values_[layer];
}

at::Tensor KVCache::Own(bool keys, int layer, int64_t begin, int64_t end) const {
  if (pool_ == nullptr) return (keys ? keys_ : values_)[layer].narrow(1, begin, end - begin);
  const at::Tensor& all = keys ? pool_->keys(layer) : pool_->values(layer);
  const int64_t block = pool_->block_tokens();
  std::vector<at::Tensor> parts;
  for (int64_t i = begin; i < end;) {
    const int64_t offset = i % block, m = std::min(end - i, block - offset);
    parts.push_back(all.select(1, blocks_[i / block]).narrow(1, offset, m));
    i += m;
  }
  if (parts.size() == 1) return parts[0];
  if (parts.empty()) return all.select(1, 0).narrow(1, 0, 0);
  return at::cat(parts, 1);
}

at::Tensor KVCache::Keys(int layer, int64_t begin, int64_t end) const {
  if (prefix_ != nullptr && end <= prefix_length_) return prefix_->Keys(layer, begin, end);
  TORCH_CHECK(begin >= prefix_length_, "KVCache::Keys: [", begin, ", ", end,
              ") crosses the prefix boundary ", prefix_length_);
  return Own(true, layer, begin - prefix_length_, end - prefix_length_);
}

at::Tensor KVCache::Values(int layer, int64_t begin, int64_t end) const {
  if (prefix_ != nullptr && end <= prefix_length_) return prefix_->Values(layer, begin, end);
  TORCH_CHECK(begin >= prefix_length_, "KVCache::Values: [", begin, ", ", end,
              ") crosses the prefix boundary ", prefix_length_);
  return Own(false, layer, begin - prefix_length_, end - prefix_length_);
}

}  // namespace icae
