// Slot-prefix reuse: the KV of context prefixes (template tokens, memory slots and text up to the
// prompt), kept for later requests over the same documents so that a second question prefills
// only itself. Keyed by the prefix's content (PrefixKey: its token ids and slot tensors as sent),
// hashed and checked element for element on a hit, so two prefixes share KV only when the model
// would compute the same KV for both.
//
// Entries are frozen KVCaches held by shared_ptr: a request that reuses one holds it, so evicting
// an entry (least recently used first, when the cache passes its byte limit or the engine needs
// the room) never frees KV a running request reads; the memory goes when its last reader ends.
// Used by the engine's scheduler thread only: not thread-safe.
#ifndef ICAE_DECODER_SERVICE_ENGINE_PREFIX_CACHE_H_
#define ICAE_DECODER_SERVICE_ENGINE_PREFIX_CACHE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/model/kv_cache.h"

namespace icae::decoder {

// The content of a context prefix, piece by piece in layout order: `ids` holds template and
// text token ids, a special token as -1 - its index and each slot part as kSlotsMarker; `slots`
// holds the slot parts' tensors as the request sent them (CPU, contiguous; any float dtype).
struct PrefixKey {
  static constexpr int kSlotsMarker = -100;
  std::vector<int> ids;
  std::vector<at::Tensor> slots;
  int64_t positions = 0;  // Decoder positions the prefix takes.
  uint64_t hash = 0;      // Set by Seal().

  // Computes `hash` over everything above.
  void Seal();
  // Same pieces, same slot dtypes, shapes and bytes.
  bool SameContent(const PrefixKey& other) const;
  // Bytes the key holds (ids and slot tensors).
  int64_t bytes() const;
};

class PrefixCache {
 public:
  // Keeps at most `max_bytes` of KV and key embeddings.
  explicit PrefixCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

  // The kept KV of a prefix with exactly `key`'s content, or null. A hit becomes the most
  // recently used entry.
  std::shared_ptr<const KVCache> Find(const PrefixKey& key);

  // Keeps `kv`, the complete KV of `key`'s prefix (the entry keeps the key, its slot tensors
  // included). Replaces an entry with the same content; drops least recently used entries past
  // max_bytes. An entry larger than max_bytes alone is not kept.
  void Insert(PrefixKey key, std::shared_ptr<const KVCache> kv);

  // Drops the least recently used entry that no request holds. False when there is none.
  bool EvictIdle();

  int64_t bytes() const { return bytes_; }
  int64_t max_bytes() const { return max_bytes_; }
  int entries() const { return static_cast<int>(lru_.size()); }
  // Entries dropped so far (byte limit or EvictIdle).
  int64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    PrefixKey key;
    std::shared_ptr<const KVCache> kv;
    int64_t bytes = 0;
  };
  using List = std::list<Entry>;  // Most recently used first.

  List::iterator Lookup(const PrefixKey& key);
  void Erase(List::iterator it);

  const int64_t max_bytes_;
  int64_t bytes_ = 0;
  int64_t evictions_ = 0;
  List lru_;
  // hash -> entries with that hash (collisions are told apart by their bytes).
  absl::flat_hash_map<uint64_t, std::vector<List::iterator>> index_;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_PREFIX_CACHE_H_
