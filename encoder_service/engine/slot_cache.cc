#include "encoder_service/engine/slot_cache.h"

#include <cstring>
#include <utility>
#include <vector>

#include "common/base/sha256.h"

namespace icae::encoder {

std::string SlotCacheKey(const std::string& encoder_id, absl::Span<const int> token_ids,
                         DType dtype) {
  // Ids as fixed-width little-endian int32, so the key does not depend on how they were sent.
  std::vector<char> bytes(token_ids.size() * 4);
  for (size_t i = 0; i < token_ids.size(); ++i) {
    const uint32_t v = static_cast<uint32_t>(token_ids[i]);
    const char le[4] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
                        static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
    std::memcpy(bytes.data() + 4 * i, le, 4);
  }
  Sha256 hasher;
  hasher.UpdateField("icae-slot-cache-v1");
  hasher.UpdateField(encoder_id);
  hasher.UpdateField(DTypeName(dtype));
  hasher.UpdateField(absl::string_view(bytes.data(), bytes.size()));
  return hasher.HexDigest();
}

SlotCache::SlotCache(int64_t capacity_bytes, EngineMetrics* metrics)
    : capacity_(capacity_bytes > 0 ? capacity_bytes : 0), metrics_(metrics) {}

std::optional<SlotBlock> SlotCache::Lookup(const std::string& key) {
  if (!enabled()) return std::nullopt;
  std::optional<SlotBlock> found;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
    } else {
      ++hits_;
      lru_.splice(lru_.begin(), lru_, it->second);
      found = it->second->block;
    }
  }
  if (metrics_ != nullptr) metrics_->AddCacheLookup(found.has_value());
  return found;
}

void SlotCache::Insert(const std::string& key, SlotBlock block) {
  if (!enabled() || block.data == nullptr) return;
  const int64_t charge = static_cast<int64_t>(block.bytes() + 2 * key.size()) + kEntryOverhead;
  if (charge > capacity_) return;
  int64_t evicted = 0;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = index_.find(key); it != index_.end()) EraseLocked(it->second);
    while (bytes_ + charge > capacity_ && !lru_.empty()) {
      EraseLocked(std::prev(lru_.end()));
      ++evicted;
    }
    lru_.push_front(Entry{key, std::move(block), charge});
    index_[key] = lru_.begin();
    bytes_ += charge;
    evictions_ += evicted;
    // Under the lock so that concurrent inserts cannot publish their sizes out of order.
    if (metrics_ != nullptr) metrics_->SetCacheBytes(bytes_);
  }
  if (metrics_ != nullptr && evicted > 0) metrics_->AddCacheEvictions(evicted);
}

void SlotCache::EraseLocked(List::iterator it) {
  bytes_ -= it->charge;
  index_.erase(it->key);
  lru_.erase(it);
}

int64_t SlotCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int64_t SlotCache::entries() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(lru_.size());
}

int64_t SlotCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t SlotCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

int64_t SlotCache::evictions() const {
  absl::MutexLock lock(&mu_);
  return evictions_;
}

}  // namespace icae::encoder
