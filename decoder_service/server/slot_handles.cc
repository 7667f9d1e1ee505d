#include "decoder_service/server/slot_handles.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace icae::decoder {

SlotHandleFetcher::SlotHandleFetcher(const SlotStoreOptions& options, StoreMetrics* metrics)
    : ttl_(options.ttl), metrics_(metrics), redis_(options.redis) {}

absl::StatusOr<std::vector<v1::MemorySlots>> SlotHandleFetcher::Fetch(
    absl::Span<const v1::SlotHandle* const> handles, absl::Span<const std::string> where) const {
  std::vector<std::string> keys;
  keys.reserve(handles.size());
  for (const v1::SlotHandle* handle : handles) keys.push_back(handle->key());
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<std::optional<std::string>>> values = redis_.Get(keys, ttl_);
  if (metrics_ != nullptr) metrics_->ObserveRoundTrip(false, absl::ToDoubleSeconds(absl::Now() - start));
  if (!values.ok()) {
    if (metrics_ != nullptr) metrics_->AddLookups(0, 0, static_cast<int64_t>(keys.size()));
    return absl::UnavailableError(absl::StrCat(
        "the slot store cannot be reached (", values.status().message(),
        "); retry, or send the slots inline"));
  }
  std::vector<v1::MemorySlots> out(handles.size());
  int64_t hits = 0, misses = 0, bytes = 0;
  absl::Status first_error = absl::OkStatus();
  for (size_t i = 0; i < handles.size(); ++i) {
    const std::optional<std::string>& value = (*values)[i];
    if (!value) {
      ++misses;
      if (first_error.ok()) {
        first_error = absl::NotFoundError(absl::StrCat(
            where[i], ": slot store key ", keys[i],
            " not found (expired or never stored); compress the span again"));
      }
      continue;
    }
    ++hits;
    bytes += static_cast<int64_t>(value->size());
    if (!out[i].ParseFromString(*value) && first_error.ok()) {
      first_error = absl::DataLossError(
          absl::StrCat(where[i], ": slot store key ", keys[i], " does not hold MemorySlots"));
    }
  }
  if (metrics_ != nullptr) {
    metrics_->AddLookups(hits, misses, 0);
    metrics_->AddBytes(bytes, 0);
  }
  if (!first_error.ok()) return first_error;
  return out;
}

}  // namespace icae::decoder
