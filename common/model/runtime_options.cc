#include "common/model/runtime_options.h"

#include <ATen/Parallel.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace icae {

absl::StatusOr<Runtime> ResolveRuntime(const RuntimeOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  Runtime runtime;
  const int cuda = options.CudaIndex();
  if (cuda >= 0) {
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--device ", options.device,
          ": this LibTorch build has no CUDA support (or no GPU is visible); use --device cpu"));
    }
    runtime.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda));
  }
  runtime.dtype = options.CanonicalDtype() == "bfloat16" ? at::kBFloat16 : at::kFloat;
  return runtime;
}

void ConfigureThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

}  // namespace icae
