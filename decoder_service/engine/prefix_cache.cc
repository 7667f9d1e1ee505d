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

void PrefixKey::Seal() {
  uint64_t h = absl::HashOf(ids, positions);
  for (const at::Tensor& t : slots) {
    const absl::string_view bytes(static_cast<const char*>(t.data_ptr()),
                                  static_cast<size_t>(TensorBytes(t)));
    h = absl::HashOf(h, bytes, static_cast<int>(t.scalar_type()), t.size(0), t.size(1));
  }
  hash = h;
}

bool PrefixKey::SameContent(const PrefixKey& other) const {
  if (hash != other.hash || positions != other.positions || ids != other.ids ||
      slots.size() != other.slots.size()) {
    return false;
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!SameBytes(slots[i], other.slots[i])) return false;
  }
  return true;
}

int64_t PrefixKey::bytes() const {
  int64_t total = static_cast<int64_t>(ids.size() * sizeof(int));
  for (const at::Tensor& t : slots) total += TensorBytes(t);
  return total;
}

PrefixCache::List::iterator PrefixCache::Lookup(const PrefixKey& key) {
  auto bucket = index_.find(key.hash);
  if (bucket == index_.end()) return lru_.end();
  for (List::iterator it : bucket->second) {
    if (it->key.SameContent(key)) return it;
  }
  return lru_.end();
}

std::shared_ptr<const KVCache> PrefixCache::Find(const PrefixKey& key) {
  List::iterator it = Lookup(key);
  if (it == lru_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it);  // Iterators stay valid.
  return it->kv;
}

void PrefixCache::Insert(PrefixKey key, std::shared_ptr<const KVCache> kv) {
  if (List::iterator old = Lookup(key); old != lru_.end()) Erase(old);
  const int64_t size = kv->bytes() + key.bytes();
  if (size > max_bytes_) return;
  while (bytes_ + size > max_bytes_ && !lru_.empty()) {
    Erase(std::prev(lru_.end()));
    ++evictions_;
  }
  const uint64_t hash = key.hash;
  lru_.push_front(Entry{std::move(key), std::move(kv), size});
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
  const uint64_t hash = it->key.hash;
  std::vector<List::iterator>& bucket = index_[hash];
  bucket.erase(std::find(bucket.begin(), bucket.end(), it));
  if (bucket.empty()) index_.erase(hash);
  bytes_ -= it->bytes;
  lru_.erase(it);
}

}  // namespace icae::decoder
