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
    // [segments, mem_size, hidden] on the model's device, compute dtype.
    const at::Tensor cpu = slots.device().is_cpu() ? slots : slots.to(at::kCPU);
    for (size_t b = 0; b < jobs.size(); ++b) {
      // The codec's write path: one pass of dtype conversion (or int8 quantization) straight
      // into the response bytes.
      RETURN_IF_ERROR(WriteWireElements(cpu[static_cast<int64_t>(b)], jobs[b].wire, jobs[b].out,
                                        jobs[b].scales));
    }
    return absl::OkStatus();
  });
}

}  // namespace icae::encoder
