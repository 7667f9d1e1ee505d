#include "encoder_service/engine/engine_options.h"

#include "absl/strings/str_cat.h"

namespace icae::encoder {
namespace {

absl::Status FlagError(absl::string_view flag, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", problem));
}

}  // namespace

absl::Status EngineOptions::Validate() const {
  if (max_batch_segments < 1) return FlagError("max_batch_segments", "must be >= 1");
  if (max_batch_tokens < 1) return FlagError("max_batch_tokens", "must be >= 1");
  if (batch_timeout_us < 0) return FlagError("batch_timeout_us", "must be >= 0");
  if (executor_threads < 1 || executor_threads > 64) {
    return FlagError("executor_threads", "must be in 1..64");
  }
  if (cache_bytes < 0) return FlagError("cache_bytes", "must be >= 0 (0 disables the cache)");
  if (max_input_tokens < 1) return FlagError("max_input_tokens", "must be >= 1");
  if (max_spans < 1) return FlagError("max_spans", "must be >= 1");
  if (max_queue_segments < 1) return FlagError("max_queue_segments", "must be >= 1");
  if (max_response_bytes < 0) return FlagError("max_message_bytes", "must be >= 0");
  return absl::OkStatus();
}

absl::Status EngineOptions::ValidateForModel(int max_segment_tokens, int mem_size) const {
  const int64_t needed = static_cast<int64_t>(max_segment_tokens) + mem_size;
  if (max_batch_tokens < needed) {
    return FlagError(
        "max_batch_tokens",
        absl::StrCat(max_batch_tokens, " cannot hold one full segment: ", max_segment_tokens,
                     " tokens + ", mem_size, " memory slots need ", needed));
  }
  return absl::OkStatus();
}

void RegisterEngineFlags(FlagSet& flags, EngineOptions* out) {
  flags.Int("max_batch_segments", &out->max_batch_segments, "most segments in one model batch");
  flags.Int64("max_batch_tokens", &out->max_batch_tokens,
              "most padded positions in one batch: segments x (longest + mem_size)");
  flags.Int64("batch_timeout_us", &out->batch_timeout_us,
              "microseconds the oldest queued segment waits for company");
  flags.Int("executor_threads", &out->executor_threads, "threads running model batches");
  flags.Int64("cache_bytes", &out->cache_bytes, "slot cache capacity in bytes (0 disables)");
  flags.Int("max_input_tokens", &out->max_input_tokens, "longest span, tokens");
  flags.Int("max_spans", &out->max_spans, "most spans per request");
  flags.Int64("max_queue_segments", &out->max_queue_segments,
              "most segments waiting; beyond it requests get RESOURCE_EXHAUSTED");
}

}  // namespace icae::encoder
