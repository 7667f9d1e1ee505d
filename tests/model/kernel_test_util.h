// Helpers of the CPU kernel tests: the instruction-set levels this CPU has, a fixture restoring
// the kernels' defaults, random inputs and bf16 conversion.
#ifndef ICAE_TESTS_MODEL_KERNEL_TEST_UTIL_H_
#define ICAE_TESTS_MODEL_KERNEL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <type_traits>
#include <vector>

#include "common/model/kernels/cpu_kernels.h"
#include "common/model/ops.h"

namespace icae::testing {

// Every level up to the one this CPU supports (each test runs them all).
inline std::vector<kernels::Isa> IsasHere() {
  std::vector<kernels::Isa> isas;
  for (kernels::Isa isa :
       {kernels::Isa::kPortable, kernels::Isa::kAvx512, kernels::Isa::kAvx512Bf16}) {
    if (static_cast<int>(isa) <= static_cast<int>(kernels::DetectIsa())) isas.push_back(isa);
  }
  return isas;
}

// Runs `body` once per level of IsasHere, the kernels capped at it (traced by name).
inline void ForEachIsa(const std::function<void()>& body) {
  for (kernels::Isa isa : IsasHere()) {
    SCOPED_TRACE(kernels::IsaName(isa));
    kernels::SetIsaCap(isa);
    body();
  }
}

// Restores the kernels' defaults when a test ends.
class KernelTest : public ::testing::Test {
 protected:
  void TearDown() override {
    kernels::SetIsaCap(std::nullopt);
    SetCpuKernelsEnabled(true);
  }
};

inline std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<kernels::bf16> ToBf16(const std::vector<float>& v) {
  std::vector<kernels::bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::FloatToBf16(v[i]);
  return out;
}

// Random(n, seed, scale) in T (float32, or rounded to bf16).
template <typename T>
std::vector<T> RandomAs(size_t n, uint32_t seed, float scale = 1.0f) {
  std::vector<float> f = Random(n, seed, scale);
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    return ToBf16(f);
  }
}

// NaN in T: for storage that must not be read (a read shows in the output) or not be written.
template <typename T>
T Poison() {
  if constexpr (std::is_same_v<T, float>) {
    return std::numeric_limits<float>::quiet_NaN();
  } else {
    return 0x7FC0;
  }
}

inline float Value(float x) { return x; }
inline float Value(kernels::bf16 x) { return kernels::Bf16ToFloat(x); }

}  // namespace icae::testing

#endif  // ICAE_TESTS_MODEL_KERNEL_TEST_UTIL_H_
