// Runtime options of the encoder engine (docs/operations.md, "Encoder only"): batching, queue,
// executor threads, slot cache and request limits. Plain values with the documented defaults;
// Validate() checks them alone, ValidateForModel() against the loaded model's slot geometry.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_ENGINE_OPTIONS_H_
#define ICAE_ENCODER_SERVICE_ENGINE_ENGINE_OPTIONS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/base/flags.h"

namespace icae::encoder {

struct EngineOptions {
  // A model batch holds at most this many segments ...
  int max_batch_segments = 16;
  // ... and at most this many padded positions: segments x (longest segment + mem_size).
  int64_t max_batch_tokens = 8192;
  // How long the oldest queued segment may wait for company before a partial batch runs.
  int64_t batch_timeout_us = 2000;
  // Threads that run model batches (each runs one batch at a time).
  int executor_threads = 1;
  // Slot cache capacity in bytes; 0 disables the cache.
  int64_t cache_bytes = 256 << 20;
  // Longest span, in tokens (after tokenization), and most spans per request.
  int max_input_tokens = 5120;
  int max_spans = 64;
  // Segments waiting for a batch; a request that would overflow it is refused at once.
  int64_t max_queue_segments = 1024;
  // Largest response the transport can carry (the server's --max_message_bytes; not a flag of its
  // own). A request whose slots would not fit is refused before any compute. 0 = no limit.
  int64_t max_response_bytes = 0;

  // InvalidArgument naming the flag when a value is out of range.
  absl::Status Validate() const;
  // Also checks that one full segment fits a batch: max_batch_tokens >= max_segment_tokens +
  // mem_size.
  absl::Status ValidateForModel(int max_segment_tokens, int mem_size) const;
};

// Registers --max_batch_segments, --max_batch_tokens, --batch_timeout_us, --executor_threads,
// --cache_bytes, --max_input_tokens, --max_spans, --max_queue_segments bound to `out`.
void RegisterEngineFlags(FlagSet& flags, EngineOptions* out);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_ENGINE_OPTIONS_H_
