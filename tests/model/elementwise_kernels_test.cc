// The decode step's element-wise kernels (residual add + RMSNorm, RoPE, SiLU x up) against naive
// double-precision references that round where LibTorch's ops round, at every instruction-set
// level this CPU has, and against the ATen expressions they replace (ops.h).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/model/kernels/cpu_kernels.h"
#include "common/model/ops.h"
#include "tests/model/kernel_test_util.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using kernels::bf16;
using testing::ForEachIsa;
using testing::KernelTest;
using testing::Random;
using testing::ToBf16;
using testing::Value;

// What storing v in T keeps.
template <typename T>
double Rounded(double v) {
  if constexpr (std::is_same_v<T, float>) {
    return static_cast<float>(v);
  } else {
    return kernels::Bf16ToFloat(kernels::FloatToBf16(static_cast<float>(v)));
  }
}

template <typename T>
std::vector<T> Make(const std::vector<float>& v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return ToBf16(v);
  }
}

// One ulp of T at v (relative tolerance of a rounding that may land on either side).
template <typename T>
double Ulp(double v) {
  return std::fabs(v) * (std::is_same_v<T, float> ? 1.2e-7 : 1.0 / 128) + 1e-30;
}

template <typename T>
void CheckAddRmsNorm(int64_t rows, int64_t n, bool with_delta, uint32_t seed) {
  std::vector<T> x = Make<T>(Random(rows * n, seed, 2.0f));
  const std::vector<T> delta = Make<T>(Random(rows * n, seed + 1));
  const std::vector<T> weight = Make<T>(Random(n, seed + 2));
  std::vector<T> x0 = x, out(rows * n);
  const float eps = 1e-5f;
  if constexpr (std::is_same_v<T, float>) {
    kernels::AddRmsNormF32(x.data(), with_delta ? delta.data() : nullptr, rows, n, weight.data(),
                           eps, out.data());
  } else {
    kernels::AddRmsNormBf16(x.data(), with_delta ? delta.data() : nullptr, rows, n,
                            weight.data(), eps, out.data());
  }
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> sum(n);
    double squares = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = Rounded<T>(Value(x0[r * n + i]) +
                                  (with_delta ? Value(delta[r * n + i]) : 0.0));
      sum[i] = v;
      squares += v * v;
      ASSERT_EQ(Value(x[r * n + i]), v) << "the residual add at [" << r << ", " << i << "]";
    }
    const double inv = 1.0 / std::sqrt(squares / n + eps);
    for (int64_t i = 0; i < n; ++i) {
      const double normed = sum[i] * inv;
      const double ref = Rounded<T>(Value(weight[i]) * Rounded<T>(normed));
      // The sum's order may move the normalised value by an ulp before each rounding.
      ASSERT_NEAR(Value(out[r * n + i]), ref, 2 * Ulp<T>(ref) + 1e-6 * std::fabs(Value(weight[i])))
          << "rows " << rows << " n " << n << " at [" << r << ", " << i << "]";
    }
  }
}

TEST_F(KernelTest, AddRmsNormMatchesTheReference) {
  ForEachIsa([&] {
    uint32_t seed = 1;
    for (int64_t rows : {1, 3, 16}) {
      for (int64_t n : {1, 17, 64, 768}) {
        for (bool with_delta : {false, true}) {
          CheckAddRmsNorm<float>(rows, n, with_delta, seed += 3);
          CheckAddRmsNorm<bf16>(rows, n, with_delta, seed += 3);
        }
      }
    }
  });
}

template <typename T>
void CheckRope(int64_t rows, int64_t heads, int64_t d, int64_t extra, uint32_t seed) {
  const int64_t stride = heads * d + extra;  // Columns after the rotated heads stay as they are.
  std::vector<T> x = Make<T>(Random(rows * stride, seed));
  std::vector<float> angles = Random(rows * d / 2, seed + 1, 3.0f);
  std::vector<float> cos(rows * d), sin(rows * d);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < d / 2; ++i) {
      const float a = angles[r * d / 2 + i];
      cos[r * d + i] = cos[r * d + i + d / 2] = std::cos(a);
      sin[r * d + i] = sin[r * d + i + d / 2] = std::sin(a);
    }
  }
  const std::vector<T> c = Make<T>(cos), s = Make<T>(sin), x0 = x;
  if constexpr (std::is_same_v<T, float>) {
    kernels::RopeF32(x.data(), rows, stride, heads, d, c.data(), s.data());
  } else {
    kernels::RopeBf16(x.data(), rows, stride, heads, d, c.data(), s.data());
  }
  const int64_t half = d / 2;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t at = r * stride + h * d;
      for (int64_t i = 0; i < half; ++i) {
        const double lo = Value(x0[at + i]), hi = Value(x0[at + i + half]);
        const double a = Rounded<T>(Rounded<T>(lo * Value(c[r * d + i])) +
                                    Rounded<T>(-hi * Value(s[r * d + i])));
        const double b = Rounded<T>(Rounded<T>(hi * Value(c[r * d + i + half])) +
                                    Rounded<T>(lo * Value(s[r * d + i + half])));
        ASSERT_NEAR(Value(x[at + i]), a, Ulp<T>(a)) << "row " << r << " head " << h << " " << i;
        ASSERT_NEAR(Value(x[at + i + half]), b, Ulp<T>(b)) << "row " << r << " head " << h;
      }
    }
    for (int64_t i = heads * d; i < stride; ++i) {
      ASSERT_EQ(Value(x[r * stride + i]), Value(x0[r * stride + i])) << "column " << i;
    }
  }
}

TEST_F(KernelTest, RopeMatchesTheReference) {
  ForEachIsa([&] {
    uint32_t seed = 100;
    for (int64_t rows : {1, 5}) {
      for (int64_t d : {2, 16, 64, 128}) {
        CheckRope<float>(rows, 3, d, d, seed += 2);
        CheckRope<bf16>(rows, 3, d, 0, seed += 2);
      }
    }
  });
}

template <typename T>
void CheckSiluMul(int64_t rows, int64_t inter, uint32_t seed) {
  std::vector<float> raw = Random(rows * 2 * inter, seed, 4.0f);
  raw[0] = 95.0f;  // Past exp's clamp on both sides.
  if (raw.size() > 2) raw[1] = -95.0f;
  const std::vector<T> gate_up = Make<T>(raw);
  std::vector<T> out(rows * inter);
  if constexpr (std::is_same_v<T, float>) {
    kernels::SiluMulF32(gate_up.data(), rows, inter, out.data());
  } else {
    kernels::SiluMulBf16(gate_up.data(), rows, inter, out.data());
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < inter; ++i) {
      const double g = Value(gate_up[r * 2 * inter + i]);
      const double u = Value(gate_up[r * 2 * inter + inter + i]);
      const double silu = Rounded<T>(g / (1.0 + std::exp(-g)));
      const double ref = Rounded<T>(silu * u);
      // exp to a few ulp in float32; in bf16 that may move a rounding by one ulp.
      ASSERT_NEAR(Value(out[r * inter + i]), ref, 2 * Ulp<T>(ref) + 4e-7 * std::fabs(silu * u))
          << "rows " << rows << " inter " << inter << " at [" << r << ", " << i << "] g " << g;
    }
  }
}

TEST_F(KernelTest, SiluMulMatchesTheReference) {
  ForEachIsa([&] {
    uint32_t seed = 200;
    for (int64_t rows : {1, 4, 16}) {
      for (int64_t inter : {1, 31, 2048}) {
        CheckSiluMul<float>(rows, inter, seed += 2);
        CheckSiluMul<bf16>(rows, inter, seed += 2);
      }
    }
  });
}

// The fused forms give what the ATen expressions they replace give: RoPE bit for bit (the same
// roundings in the same order), the norm and SiLU within a rounding.
TEST_F(KernelTest, FusedOpsMatchTheirAtenExpressions) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(at::toString(dtype));
    const int64_t rows = 3, heads = 4, kv_heads = 2, d = 32;
    at::Tensor qkv = at::randn({rows, (heads + 2 * kv_heads) * d}).to(dtype);
    at::Tensor angles = at::randn({rows, d / 2}) * 5;
    at::Tensor cos = at::cat({angles, angles}, -1).cos().to(dtype);
    at::Tensor sin = at::cat({angles, angles}, -1).sin().to(dtype);
    at::Tensor fused = qkv.clone();
    ApplyRopeInPlace(fused, heads + kv_heads, d, cos, sin);
    at::Tensor q = ApplyRope(qkv.narrow(-1, 0, heads * d).reshape({rows, heads, d}),
                             cos.unsqueeze(1), sin.unsqueeze(1));
    EXPECT_TRUE(fused.narrow(-1, 0, heads * d).reshape({rows, heads, d}).equal(q));
    EXPECT_TRUE(fused.narrow(-1, (heads + kv_heads) * d, kv_heads * d)
                    .equal(qkv.narrow(-1, (heads + kv_heads) * d, kv_heads * d)));

    at::Tensor x = at::randn({rows, 96}).to(dtype), delta = at::randn({rows, 96}).to(dtype);
    at::Tensor weight = at::randn({96}).to(dtype);
    at::Tensor residual = x.clone();
    at::Tensor normed = AddRmsNorm(residual, delta, weight, 1e-6);
    EXPECT_TRUE(residual.equal(x + delta));
    // Within two of T's roundings of the value (the sum's order may move one).
    const double rtol = dtype == at::kFloat ? 1e-5 : 1.0 / 64;
    EXPECT_TRUE(at::allclose(normed.to(at::kFloat),
                             RmsNorm(x + delta, weight, 1e-6).to(at::kFloat), rtol, 1e-5));
    at::Tensor gate_up = at::randn({rows, 2 * 40}).to(dtype);
    EXPECT_TRUE(at::allclose(
        SiluMul(gate_up).to(at::kFloat),
        (at::silu(gate_up.narrow(-1, 0, 40)) * gate_up.narrow(-1, 40, 40)).to(at::kFloat), rtol,
        1e-5));
    // Off (or off the CPU), the same calls take the ATen path.
    SetCpuKernelsEnabled(false);
    at::Tensor aten = qkv.clone();
    ApplyRopeInPlace(aten, heads + kv_heads, d, cos, sin);
    EXPECT_TRUE(aten.equal(fused));
    SetCpuKernelsEnabled(true);
  }
}

}  // namespace
}  // namespace icae
