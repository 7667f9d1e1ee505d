// RuntimeOptions (common/base/runtime_options.h) resolved to LibTorch's device and dtype.
#ifndef ICAE_COMMON_MODEL_RUNTIME_OPTIONS_H_
#define ICAE_COMMON_MODEL_RUNTIME_OPTIONS_H_

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/base/runtime_options.h"

namespace icae {

struct Runtime {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// Validates the options (RuntimeOptions::Validate: InvalidArgument) and resolves them; "cuda" on a
// build or machine without CUDA is FailedPrecondition with a message saying so.
absl::StatusOr<Runtime> ResolveRuntime(const RuntimeOptions& options);

// Sets LibTorch's intra-op thread count (it starts with 1 here). 0 means every core.
void ConfigureThreads(int threads);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_RUNTIME_OPTIONS_H_
