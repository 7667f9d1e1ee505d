// The encoder engine's view of a shared slot store (Redis in production, see
// server/redis_slot_store.h): slots of spans computed by any replica, addressed by content.
// Implementations count their own hits, misses and errors, bound every call by a timeout, and
// never fail a request: a store that cannot answer is a miss, a write that cannot be made is
// reported as not stored.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_SHARED_STORE_H_
#define ICAE_ENCODER_SERVICE_ENGINE_SHARED_STORE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "common/base/dtype.h"
#include "encoder_service/engine/engine_types.h"

namespace icae::encoder {

// A span's slots with what the store keeps about them.
struct StoredSpan {
  SlotBlock slots;
  int tokens = 0;
  int segments = 0;
};

class SharedSlotStore {
 public:
  virtual ~SharedSlotStore() = default;

  // The store key of a span: "icae:slots:" + SlotCacheKey (encoder id, wire dtype, token ids).
  static std::string KeyFor(const std::string& cache_key) { return "icae:slots:" + cache_key; }

  // For each key, the span stored under it, or nullopt (absent, not usable, or the store
  // failed). A hit's slots are checked by the store: this encoder's id and slot kind, dtype
  // `wire`, [num_segments * mem_size, hidden] with byte lengths to match (and int8 scales).
  // One round trip; a hit renews the entry's time to live.
  virtual std::vector<std::optional<StoredSpan>> Fetch(absl::Span<const std::string> keys,
                                                       DType wire) = 0;
  // Writes `entries` now (one round trip); for each, whether it is in the store afterwards.
  virtual std::vector<bool> Write(absl::Span<const std::pair<std::string, StoredSpan>> entries) = 0;
  // Queues `entries` for a background writer and returns at once (dropped, and counted, when
  // the writer's queue is full).
  virtual void WriteLater(std::vector<std::pair<std::string, StoredSpan>> entries) = 0;
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_SHARED_STORE_H_
