// The process the tests' main started (UseBestBlasKernels, as every program of the project does):
// LibTorch's float32 GEMMs run on OpenBLAS (setup installs libopenblas0-openmp), and OpenBLAS must
// not be on a generic fallback where the CPU allows AVX2 or AVX-512 kernels.
#include <ATen/ATen.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>

#include "common/base/process_setup.h"

namespace icae {
namespace {

TEST(BlasKernelsTest, OpenBlasRunsKernelsTheCpuAllows) {
  at::Tensor a = at::ones({64, 64});
  EXPECT_EQ(at::mm(a, a)[0][0].item<float>(), 64.0f);  // The BLAS is loaded and used.
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  ASSERT_NE(core_name, nullptr) << "LibTorch's BLAS is not OpenBLAS (tools/setup.sh installs "
                                   "libopenblas0-openmp)";
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const std::string core = core_name();
  EXPECT_EQ(std::string(BetterBlasCore(core.c_str(), avx512, avx2_fma)), "")
      << "OpenBLAS runs its " << core << " kernels";
}

}  // namespace
}  // namespace icae
