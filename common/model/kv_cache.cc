#include "common/model/kv_cache.h"

#include <c10/util/Exception.h>

#include <algorithm>

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

int64_t KVCache::BytesPerPosition(const ModelConfig& config, at::ScalarType dtype) {
  return 2 * static_cast<int64_t>(config.num_layers) * config.num_kv_heads * config.head_dim *
         static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t KVCache::bytes() const {
  int64_t total = 0;
  for (const at::Tensor& t : keys_) total += t.numel() * t.element_size();
  for (const at::Tensor& t : values_) total += t.numel() * t.element_size();
  return total;
}

void KVCache::Reserve(int64_t extra) {
  const int64_t needed = length_ + extra;
  if (needed <= capacity_) return;
  SetCapacity(std::max(needed, capacity_ * 2));
}

void KVCache::SetCapacity(int64_t capacity) {
  TORCH_CHECK(capacity >= length_ && capacity >= 1, "KVCache::SetCapacity: ", capacity,
              " positions cannot hold the ", length_, " written");
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
  keys_[layer].narrow(1, length_, n).copy_(k);
  values_[layer].narrow(1, length_, n).copy_(v);
}

at::Tensor KVCache::Keys(int layer, int64_t begin, int64_t end) const {
  if (prefix_ != nullptr && end <= prefix_length_) return prefix_->Keys(layer, begin, end);
  TORCH_CHECK(begin >= prefix_length_, "KVCache::Keys: [", begin, ", ", end,
              ") crosses the prefix boundary ", prefix_length_);
  return keys_[layer].narrow(1, begin - prefix_length_, end - begin);
}

at::Tensor KVCache::Values(int layer, int64_t begin, int64_t end) const {
  if (prefix_ != nullptr && end <= prefix_length_) return prefix_->Values(layer, begin, end);
  TORCH_CHECK(begin >= prefix_length_, "KVCache::Values: [", begin, ", ", end,
              ") crosses the prefix boundary ", prefix_length_);
  return values_[layer].narrow(1, begin - prefix_length_, end - begin);
}

}  // namespace icae
