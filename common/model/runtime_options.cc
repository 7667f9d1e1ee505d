#include "common/model/runtime_options.h"

#include <ATen/Parallel.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace icae {

absl::StatusOr<Runtime> ResolveRuntime(const RuntimeOptions& options) {
  Runtime runtime;
  absl::string_view device = options.device;
  if (device == "cpu") {
    runtime.device = at::Device(at::kCPU);
  } else if (absl::ConsumePrefix(&device, "cuda")) {
    int index = 0;
    if (!device.empty() &&
        !(absl::ConsumePrefix(&device, ":") && absl::SimpleAtoi(device, &index) && index >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--device '", options.device, "': expected cpu, cuda or cuda:N"));
    }
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--device ", options.device,
          ": this LibTorch build has no CUDA support (or no GPU is visible); use --device cpu"));
    }
    runtime.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--device '", options.device, "': expected cpu, cuda or cuda:N"));
  }
  if (options.dtype == "float32" || options.dtype == "fp32") {
    runtime.dtype = at::kFloat;
  } else if (options.dtype == "bfloat16" || options.dtype == "bf16") {
    runtime.dtype = at::kBFloat16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype '", options.dtype, "': expected float32 or bfloat16"));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads ", options.threads, " must be >= 0"));
  }
  return runtime;
}

void ConfigureThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

}  // namespace icae
