// The main of every test binary: the process takes the BLAS kernels the project's programs take
// (UseBestBlasKernels), so that a test comparing a server's output with the same computation
// in-process compares like with like, then runs the tests.
#include <gtest/gtest.h>

#include "common/base/process_setup.h"

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
