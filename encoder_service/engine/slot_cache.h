// Content-addressed LRU cache of span slots, bounded in bytes.
//
// The key is (encoder_id, sha256 of the span's token ids, wire dtype): the same tokens through the
// same model and adapter always give the same slots, and slots of different dtypes are different
// bytes. A value is an immutable SlotBlock whose bytes are shared with the responses that use it.
// An entry's charge is its data bytes plus its key and a fixed overhead; an entry larger than
// the whole capacity is not kept. Thread-safe (one mutex; lookups are O(1)).
#ifndef ICAE_ENCODER_SERVICE_ENGINE_SLOT_CACHE_H_
#define ICAE_ENCODER_SERVICE_ENGINE_SLOT_CACHE_H_

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/base/dtype.h"
#include "encoder_service/engine/engine_metrics.h"
#include "encoder_service/engine/engine_types.h"

namespace icae::encoder {

// The cache key of a span: 64 hex digits of sha256 over the encoder id, the dtype and the ids.
std::string SlotCacheKey(const std::string& encoder_id, absl::Span<const int> token_ids,
                         DType dtype);

class SlotCache {
 public:
  // Bytes charged per entry on top of its data and key (list and map nodes, the block).
  static constexpr int64_t kEntryOverhead = 128;

  // `capacity_bytes` 0 disables the cache (every Lookup misses uncounted, Insert keeps nothing).
  // `metrics` may be null; it must outlive the cache.
  SlotCache(int64_t capacity_bytes, EngineMetrics* metrics);

  bool enabled() const { return capacity_ > 0; }
  int64_t capacity_bytes() const { return capacity_; }

  // The cached block and a hit, or nullopt and a miss (both counted when enabled). A hit becomes
  // the most recently used entry.
  std::optional<SlotBlock> Lookup(const std::string& key);
  // Adds or replaces `key`, evicting least recently used entries to make room.
  void Insert(const std::string& key, SlotBlock block);

  int64_t bytes() const;
  int64_t entries() const;
  int64_t hits() const;
  int64_t misses() const;
  int64_t evictions() const;

 private:
  struct Entry {
    std::string key;
    SlotBlock block;
    int64_t charge = 0;
  };
  using List = std::list<Entry>;
  void EraseLocked(List::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t capacity_;
  EngineMetrics* const metrics_;
  mutable absl::Mutex mu_;
  List lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  std::unordered_map<std::string, List::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_SLOT_CACHE_H_
