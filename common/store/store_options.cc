#include "common/store/store_options.h"

#include "absl/strings/str_cat.h"

namespace icae {

void RegisterSlotStoreFlags(FlagSet& flags, bool writer, SlotStoreFlags* out) {
  flags.String("slot_store", &out->url,
               "shared slot store, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (empty: none)");
  if (writer) {
    flags.Int64("slot_store_ttl", &out->ttl_seconds,
                "seconds a stored entry lives after its last write or read (0: no expiry)");
  } else {
    out->ttl_seconds = 0;
    flags.Int64("slot_store_ttl", &out->ttl_seconds,
                "seconds a handle's entry lives after the decoder read it (0: reads do not "
                "renew; the entry lives as the encoder wrote it)");
  }
  flags.Int64("slot_store_timeout_ms", &out->timeout_ms,
              "connect and I/O timeout of each slot store call, milliseconds");
  if (writer) {
    flags.Int64("slot_store_max_value_bytes", &out->max_value_bytes,
                "entries larger than this are not written to the slot store");
    flags.Int64("slot_store_queue_bytes", &out->queue_bytes,
                "most bytes of background slot store writes waiting (beyond: dropped)");
  }
}

absl::StatusOr<std::optional<SlotStoreOptions>> SlotStoreOptionsFromFlags(
    const SlotStoreFlags& flags) {
  if (flags.url.empty()) return std::nullopt;
  absl::StatusOr<RedisOptions> redis = ParseRedisUrl(flags.url);
  if (!redis.ok()) return absl::InvalidArgumentError(absl::StrCat("--slot_store: ", redis.status().message()));
  if (flags.ttl_seconds < 0) return absl::InvalidArgumentError("--slot_store_ttl must be >= 0");
  if (flags.timeout_ms < 1 || flags.timeout_ms > 60000) {
    return absl::InvalidArgumentError("--slot_store_timeout_ms must be in 1..60000");
  }
  if (flags.max_value_bytes < 1) {
    return absl::InvalidArgumentError("--slot_store_max_value_bytes must be >= 1");
  }
  if (flags.queue_bytes < 0) return absl::InvalidArgumentError("--slot_store_queue_bytes must be >= 0");
  SlotStoreOptions options;
  options.redis = *std::move(redis);
  options.redis.connect_timeout = absl::Milliseconds(flags.timeout_ms);
  options.redis.io_timeout = absl::Milliseconds(flags.timeout_ms);
  options.ttl = absl::Seconds(flags.ttl_seconds);
  options.max_value_bytes = flags.max_value_bytes;
  options.queue_bytes = flags.queue_bytes;
  return options;
}

}  // namespace icae
