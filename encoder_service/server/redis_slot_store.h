// The encoder's shared slot store on Redis: entries are serialized MemorySlots (exactly what a
// Compress response would carry, so a decoder fetching a handle validates them as inline slots),
// keyed by SharedSlotStore::KeyFor. Fetch checks what it reads (kind, encoder id, dtype, shape,
// byte lengths) and treats anything off as a miss; writes in the background go through one
// writer thread with a byte-bounded queue. No call ever fails a request: store errors are misses
// or unstored spans, counted in StoreMetrics.
#ifndef ICAE_ENCODER_SERVICE_SERVER_REDIS_SLOT_STORE_H_
#define ICAE_ENCODER_SERVICE_SERVER_REDIS_SLOT_STORE_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/store/redis_client.h"
#include "common/store/store_metrics.h"
#include "common/store/store_options.h"
#include "encoder_service/engine/engine_types.h"
#include "encoder_service/engine/shared_store.h"

namespace icae::encoder {

class RedisSlotStore final : public SharedSlotStore {
 public:
  // `metrics` may be null; it must outlive the store.
  RedisSlotStore(SlotStoreOptions options, EngineModelInfo info, StoreMetrics* metrics);
  // Stops the writer; writes still queued are dropped.
  ~RedisSlotStore() override;

  std::vector<std::optional<StoredSpan>> Fetch(absl::Span<const std::string> keys,
                                               DType wire) override;
  std::vector<bool> Write(absl::Span<const std::pair<std::string, StoredSpan>> entries) override;
  void WriteLater(std::vector<std::pair<std::string, StoredSpan>> entries) override;

  // Blocks until the background queue is empty and its last batch written (tests, drain).
  void Flush();
  const SlotStoreOptions& options() const { return options_; }

 private:
  void WriterLoop();

  const SlotStoreOptions options_;
  const EngineModelInfo info_;
  StoreMetrics* const metrics_;
  RedisClient redis_;

  absl::Mutex mu_;
  std::deque<std::pair<std::string, StoredSpan>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_REDIS_SLOT_STORE_H_
