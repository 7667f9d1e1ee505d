// Flags and options of the shared slot store, the same in both services:
//   --slot_store redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]   (empty: no store)
//   --slot_store_ttl SECONDS          an entry lives this long after its last write or read
//                                     (decoder: after its read; default 0, reads do not renew)
//   --slot_store_timeout_ms MS        connect and I/O timeout of each store call
//   --slot_store_max_value_bytes N    larger entries are not stored (encoder)
//   --slot_store_queue_bytes N        background writes waiting, at most (encoder)
#ifndef ICAE_COMMON_STORE_STORE_OPTIONS_H_
#define ICAE_COMMON_STORE_STORE_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/flags.h"
#include "common/store/redis_client.h"

namespace icae {

struct SlotStoreFlags {
  std::string url;
  int64_t ttl_seconds = 3600;
  int64_t timeout_ms = 200;
  int64_t max_value_bytes = 16 << 20;
  int64_t queue_bytes = 64 << 20;
};

struct SlotStoreOptions {
  RedisOptions redis;
  absl::Duration ttl = absl::Hours(1);
  int64_t max_value_bytes = 16 << 20;
  int64_t queue_bytes = 64 << 20;
};

// Registers the flags above into `out` (`writer`: the encoder's set; otherwise the decoder's,
// whose --slot_store_ttl defaults to 0).
void RegisterSlotStoreFlags(FlagSet& flags, bool writer, SlotStoreFlags* out);

// nullopt when --slot_store is empty; InvalidArgument naming the flag for a bad value.
absl::StatusOr<std::optional<SlotStoreOptions>> SlotStoreOptionsFromFlags(
    const SlotStoreFlags& flags);

}  // namespace icae

#endif  // ICAE_COMMON_STORE_STORE_OPTIONS_H_
