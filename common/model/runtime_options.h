// Runtime options of a deployment (flags, never the checkpoint): device, compute dtype, threads.
#ifndef ICAE_COMMON_MODEL_RUNTIME_OPTIONS_H_
#define ICAE_COMMON_MODEL_RUNTIME_OPTIONS_H_

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"

namespace icae {

struct RuntimeOptions {
  std::string device = "cpu";     // "cpu", "cuda" or "cuda:N".
  std::string dtype = "float32";  // Compute dtype: "float32" or "bfloat16".
  int threads = 0;                // LibTorch intra-op threads; 0 = every core.
};

struct Runtime {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// Validates the options. "cuda" on a build or machine without CUDA is FailedPrecondition with a
// message saying so; an unknown device or dtype is InvalidArgument.
absl::StatusOr<Runtime> ResolveRuntime(const RuntimeOptions& options);

// Sets LibTorch's intra-op thread count (it starts with 1 here). 0 means every core.
void ConfigureThreads(int threads);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_RUNTIME_OPTIONS_H_
