// BetterBlasCore: which OpenBLAS kernel sets are replaced, and by what.
#include "common/base/process_setup.h"

#include <gtest/gtest.h>

#include <string>

namespace icae {
namespace {

TEST(BetterBlasCoreTest, ReplacesOnlyGenericFallbacksByWhatTheCpuAllows) {
  // The fallbacks of an unknown CPU model: the best set the features allow.
  EXPECT_EQ(std::string(BetterBlasCore("Prescott", true, true)), "SkylakeX");
  EXPECT_EQ(std::string(BetterBlasCore("prescott", false, true)), "Haswell");
  EXPECT_EQ(std::string(BetterBlasCore("Core2", true, true)), "SkylakeX");
  EXPECT_EQ(std::string(BetterBlasCore("Sandybridge", false, true)), "Haswell");
  // A CPU with neither AVX2 nor AVX-512 keeps what it has.
  EXPECT_EQ(std::string(BetterBlasCore("Prescott", false, false)), "");
  // Sets OpenBLAS chose for the CPU stay, whatever their case.
  for (const char* chosen : {"SkylakeX", "cooperlake", "SapphireRapids", "Haswell", "Zen"}) {
    EXPECT_EQ(std::string(BetterBlasCore(chosen, true, true)), "") << chosen;
  }
  EXPECT_EQ(std::string(BetterBlasCore(nullptr, true, true)), "");
}

}  // namespace
}  // namespace icae
