// The runtime options of a deployment (flags, never the checkpoint): device, compute dtype and
// LibTorch intra-op threads, as --device / --dtype / --threads spell them. The one type for them
// in the project: the services' flags hold it, the model loaders take it, and Validate is its one
// parser (ResolveRuntime in common/model turns it into LibTorch's device and dtype). No LibTorch.
#ifndef ICAE_COMMON_BASE_RUNTIME_OPTIONS_H_
#define ICAE_COMMON_BASE_RUNTIME_OPTIONS_H_

#include <string>

#include "absl/status/status.h"

namespace icae {

struct RuntimeOptions {
  std::string device = "cpu";     // "cpu", "cuda" or "cuda:N".
  std::string dtype = "float32";  // "float32" (or "fp32"), "bfloat16" (or "bf16").
  int threads = 0;                // LibTorch intra-op threads; 0 = every core.

  // InvalidArgument naming the flag for a malformed --device, an unknown --dtype or a negative
  // --threads. Whether the device exists is ResolveRuntime's question.
  absl::Status Validate() const;
  // "float32" or "bfloat16" (after Validate).
  std::string CanonicalDtype() const;
  // The CUDA device index, -1 for the CPU (after Validate).
  int CudaIndex() const;
};

}  // namespace icae

#endif  // ICAE_COMMON_BASE_RUNTIME_OPTIONS_H_
