// The process the tests' main started (UseBestBlasKernels, as every program of the project does):
// LibTorch's float32 GEMMs run on OpenBLAS (setup installs libopenblas0-openmp), and OpenBLAS must
// not be on a generic fallback where the CPU allows AVX2 or AVX-512 kernels.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "common/base/process_setup.h"

namespace icae {
namespace {

TEST(BlasKernelsTest, OpenBlasRunsKernelsTheCpuAllows) {
  at::Tensor a = at::ones({64, 64});
  EXPECT_EQ(at::mm(a, a)[0][0].item<float>(), 64.0f);  // The BLAS is loaded and used.
  const char* core = LoadedOpenBlasCore();
  ASSERT_NE(core, nullptr) << "LibTorch's BLAS is not OpenBLAS (tools/setup.sh installs "
                              "libopenblas0-openmp)";
  EXPECT_EQ(std::string(BetterBlasCoreHere(core)), "") << "OpenBLAS runs its " << core << " kernels";
}

}  // namespace
}  // namespace icae
