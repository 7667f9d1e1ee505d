// Slot handles on the decoder: fetches the MemorySlots a SlotHandle names from the shared slot
// store (one pipelined round trip for every handle of a request), so that request conversion can
// validate them exactly as inline slots. Errors: NotFound naming the key (expired or never
// stored: the client recompresses), Unavailable (the store cannot be reached), DataLoss (the
// stored bytes are not a MemorySlots message). Thread-safe.
#ifndef ICAE_DECODER_SERVICE_SERVER_SLOT_HANDLES_H_
#define ICAE_DECODER_SERVICE_SERVER_SLOT_HANDLES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/store/redis_client.h"
#include "common/store/store_metrics.h"
#include "common/store/store_options.h"
#include "icae/v1/slots.pb.h"

namespace icae::decoder {

class SlotHandleFetcher {
 public:
  // `metrics` may be null; it must outlive the fetcher.
  SlotHandleFetcher(const SlotStoreOptions& options, StoreMetrics* metrics);

  // The slots under each handle's key, in order; `where[i]` names handle i in errors
  // (e.g. "context[2].handle"). A read renews the entry's time to live.
  absl::StatusOr<std::vector<v1::MemorySlots>> Fetch(absl::Span<const v1::SlotHandle* const> handles,
                                                     absl::Span<const std::string> where) const;

 private:
  const absl::Duration ttl_;
  StoreMetrics* const metrics_;
  mutable RedisClient redis_;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_SERVER_SLOT_HANDLES_H_
