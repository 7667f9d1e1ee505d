#include "encoder_service/engine/segment_runner.h"

#include <ATen/ATen.h>

#include "common/base/status_macros.h"
#include "common/codec/tensor_codec.h"
#include "common/model/compressor.h"
#include "common/model/scalar_type.h"
#include "common/model/torch_status.h"

namespace icae::encoder {

absl::Status RunSegmentBatch(const Compressor& compressor, absl::Span<const SegmentJob> jobs) {
  std::vector<std::vector<int>> segments;
  segments.reserve(jobs.size());
  for (const SegmentJob& job : jobs) segments.emplace_back(job.ids.begin(), job.ids.end());
  ASSIGN_OR_RETURN(at::Tensor slots, compressor.CompressSegments(segments));
  return CatchTorch("writing slots", [&]() -> absl::Status {
    c10::InferenceMode guard;
    // [segments, mem_size, hidden] or [segments, layers, 2, kv_heads, mem_size, head_dim] on the
    // model's device, compute dtype; per segment, blocks of [mem_size, row] rows.
    const at::Tensor cpu = slots.device().is_cpu() ? slots : slots.to(at::kCPU);
    const int64_t mem = compressor.mem_size(), row = cpu.size(-1);
    const at::Tensor blocks = cpu.reshape({cpu.size(0), -1, mem, row});
    for (size_t b = 0; b < jobs.size(); ++b) {
      const SegmentJob& job = jobs[b];
      const int64_t item_size = static_cast<int64_t>(ItemSize(job.wire));
      for (int64_t k = 0; k < blocks.size(1); ++k) {
        // The codec's write path: one pass of dtype conversion (or int8 quantization) straight
        // into the response bytes, at this segment's rows of block k.
        const int64_t first_row = k * job.span_slots + job.first_slot;
        RETURN_IF_ERROR(WriteWireElements(
            blocks[static_cast<int64_t>(b)][k], job.wire, job.out + first_row * row * item_size,
            job.scales == nullptr ? nullptr : job.scales + first_row));
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace icae::encoder
