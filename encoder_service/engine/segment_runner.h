// Runs one batch of segments through the Compressor and writes each segment's slots, converted
// to the dtype its request asked for, straight into the span's result buffer. The one place the
// engine touches LibTorch (besides loading). Thread-safe: the Compressor is immutable and every
// job writes its own bytes.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_SEGMENT_RUNNER_H_
#define ICAE_ENCODER_SERVICE_ENGINE_SEGMENT_RUNNER_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/base/dtype.h"

namespace icae {
class Compressor;
}  // namespace icae

namespace icae::encoder {

struct SegmentJob {
  absl::Span<const int> ids;  // the segment's tokens, 1..max_segment_tokens ids
  DType wire = DType::kFloat32;
  // The span's slots in their wire layout (SlotGeometry: blocks of [span_slots, row] elements of
  // `wire`), of which this segment writes slots [first_slot, first_slot + mem_size) in every
  // block ...
  char* out = nullptr;
  // ... and for kInt8 their float32 row scales ([blocks, span_slots], see
  // common/codec/tensor_codec.h).
  float* scales = nullptr;
  int64_t span_slots = 0;
  int64_t first_slot = 0;
};

// One model call for every job (right-padded batch). On error nothing useful was written;
// LibTorch exceptions come back as Internal / ResourceExhausted.
absl::Status RunSegmentBatch(const Compressor& compressor, absl::Span<const SegmentJob> jobs);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_SEGMENT_RUNNER_H_
