#include "decoder_service/engine/prefix_cache.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace icae::decoder {
namespace {

int64_t TensorBytes(const at::Tensor& t) { return t.numel() * t.element_size(); }

bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
         std::memcmp(a.data_ptr(), b.data_ptr(), TensorBytes(a)) == 0;
}

}  // namespace

uint64_t PrefixHash(const at::Tensor& embeds) {
  const absl::string_view bytes(static_cast<const char*>(embeds.data_ptr()),
                                static_cast<size_t>(TensorBytes(embeds)));
  return absl::HashOf(bytes, static_cast<int>(embeds.scalar_type()), embeds.size(0),
                      embeds.dim() > 1 ? embeds.size(1) : 0);
}

PrefixCache::List::iterator PrefixCache::Lookup(uint64_t hash, const at::Tensor& embeds) {
  auto bucket = index_.find(hash);
  if (bucket == index_.end()) return lru_.end();
  for (List::iterator it : bucket->second) {
    if (SameBytes(it->embeds, embeds)) return it;
  }
  return lru_.end();
}

std::shared_ptr<const KVCache> PrefixCache::Find(uint64_t hash, const at::Tensor& embeds) {
  List::iterator it = Lookup(hash, embeds);
  if (it == lru_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it);  // Iterators stay valid.
  return it->kv;
}

void PrefixCache::Insert(uint64_t hash, at::Tensor embeds, std::shared_ptr<const KVCache> kv) {
  if (List::iterator old = Lookup(hash, embeds); old != lru_.end()) Erase(old);
  const int64_t size = kv->bytes() + TensorBytes(embeds);
  if (size > max_bytes_) return;
  while (bytes_ + size > max_bytes_ && !lru_.empty()) {
    Erase(std::prev(lru_.end()));
    ++evictions_;
  }
  lru_.push_front(Entry{hash, std::move(embeds), std::move(kv), size});
  index_[hash].push_back(lru_.begin());
  bytes_ += size;
}

bool PrefixCache::EvictIdle() {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    if (it->kv.use_count() == 1) {
      Erase(std::prev(it.base()));
      ++evictions_;
      return true;
    }
  }
  return false;
}

void PrefixCache::Erase(List::iterator it) {
  std::vector<List::iterator>& bucket = index_[it->hash];
  bucket.erase(std::find(bucket.begin(), bucket.end(), it));
  if (bucket.empty()) index_.erase(it->hash);
  bytes_ -= it->bytes;
  lru_.erase(it);
}

}  // namespace icae::decoder
