// The element-wise kernels (cpu_kernels.h): residual add + RMSNorm, RoPE in place, SiLU x up. One
// call per layer stage instead of LibTorch's eight to ten (each a dispatch, an allocation and a
// pass); the arithmetic is float32 and rounds where LibTorch's ops round (bfloat16 storage rounds
// after each op). A scalar body (the portable version) and an AVX-512 one with the same operations
// per value. A decode step's few rows run on the calling thread; many rows (a prefill, a
// compression) are split across LibTorch's pool.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/model/kernels/cpu_kernels.h"
#include "common/model/kernels/simd.h"

namespace icae::kernels {
namespace {

using internal::Exp16;
using internal::FirstLanes;
using internal::Load16;
using internal::Round16;
using internal::Store16;
using internal::Sum16;

// v rounded to bfloat16 (nearest even; NaN stays NaN) and widened back: what a bfloat16 tensor
// op stores. Branch-free so that the loops vectorise.
inline float RoundedToBf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  const uint32_t quiet = (bits | 0x00400000u) & 0xffff0000u;
  const uint32_t out = nan ? quiet : rounded;
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

template <typename T>
inline float Get(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, float>) {
    return p[i];
  } else {
    const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
}

// Stores a value that is already representable in T (rounded by Round<T>).
template <typename T>
inline void Put(T* p, int64_t i, float v) {
  if constexpr (std::is_same_v<T, float>) {
    p[i] = v;
  } else {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    p[i] = static_cast<bf16>(bits >> 16);
  }
}

// What an op of T stores for the float32 result v.
template <typename T>
inline float Round(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return RoundedToBf16(v);
  }
}

// exp(x) for float32, to about 2 ulp over the range that matters (|x| < 88; below it 0, above it
// inf): 2^(x log2 e) split into 2^n and a degree-6 polynomial of the rest. Branch-free.
inline float Exp(float x) {
  x = std::fmin(std::fmax(x, -88.0f), 88.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;  // ln 2, split
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}

template <typename T>
inline void AddRmsNormBody(T* x, const T* delta, int64_t rows, int64_t n, const T* weight,
                           float eps, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    T* xr = x + r * n;
    float sum = 0;
    if (delta != nullptr) {
      const T* dr = delta + r * n;
      for (int64_t i = 0; i < n; ++i) {
        const float v = Round<T>(Get(xr, i) + Get(dr, i));
        Put(xr, i, v);
        sum += v * v;
      }
    } else {
      for (int64_t i = 0; i < n; ++i) sum += Get(xr, i) * Get(xr, i);
    }
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
    T* o = out + r * n;
    for (int64_t i = 0; i < n; ++i) {
      Put(o, i, Round<T>(Get(weight, i) * Round<T>(Get(xr, i) * inv)));
    }
  }
}

// f(v, c, s) for each of the `heads` heads of d values of each row (v at x + r * row_stride +
// h * d) with that row's cos and sin tables (c, s): the walk both RoPE versions share.
template <typename T, typename Head>
inline void ForEachRopeHead(T* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
                            const T* cos, const T* sin, Head f) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) f(x + r * row_stride + h * d, cos + r * d, sin + r * d);
  }
}

// One head: out[i] = x[i] cos[i] - x[i + half] sin[i]; out[i + half] = x[i + half] cos[i + half]
// + x[i] sin[i + half]; each product and the sum rounded as T's ops round them.
template <typename T>
inline void RopeHead(T* v, const T* c, const T* s, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float lo = Get(v, i), hi = Get(v, i + half);
    const float a = Round<T>(Round<T>(lo * Get(c, i)) + Round<T>(-hi * Get(s, i)));
    const float b = Round<T>(Round<T>(hi * Get(c, i + half)) + Round<T>(lo * Get(s, i + half)));
    Put(v, i, a);
    Put(v, i + half, b);
  }
}

template <typename T>
inline void SiluMulBody(const T* gate_up, int64_t rows, int64_t inter, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* g = gate_up + r * 2 * inter;
    const T* u = g + inter;
    T* o = out + r * inter;
    for (int64_t i = 0; i < inter; ++i) {
      const float x = Get(g, i);
      const float silu = Round<T>(x / (1.0f + Exp(-x)));
      Put(o, i, Round<T>(silu * Get(u, i)));
    }
  }
}

// The AVX-512 versions: the same arithmetic in the same order per value, 16 values at a time
// (masked tails), rounding with Round16 where the scalar bodies round with Round.
template <typename T>
ICAE_AVX512 void AddRmsNormAvx512(T* x, const T* delta, int64_t rows, int64_t n, const T* weight,
                                  float eps, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    T* xr = x + r * n;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = FirstLanes(n - i);
      __m512 v = Load16(xr + i, m);
      if (delta != nullptr) {
        v = Round16<T>(_mm512_add_ps(v, Load16(delta + r * n + i, m)));
        Store16(xr + i, v, m);
      }
      acc = _mm512_fmadd_ps(v, v, acc);  // Masked lanes are zero.
    }
    const __m512 inv =
        _mm512_set1_ps(1.0f / std::sqrt(Sum16(acc) / static_cast<float>(n) + eps));
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = FirstLanes(n - i);
      const __m512 normed = Round16<T>(_mm512_mul_ps(Load16(xr + i, m), inv));
      Store16(out + r * n + i, Round16<T>(_mm512_mul_ps(Load16(weight + i, m), normed)), m);
    }
  }
}

// RopeHead 16 values at a time.
template <typename T>
ICAE_AVX512 void RopeHeadAvx512(T* v, const T* c, const T* s, int64_t half) {
  for (int64_t i = 0; i < half; i += 16) {
    const __mmask16 m = FirstLanes(half - i);
    const __m512 lo = Load16(v + i, m), hi = Load16(v + half + i, m);
    const __m512 neg_hi = _mm512_sub_ps(_mm512_setzero_ps(), hi);
    const __m512 a =
        Round16<T>(_mm512_add_ps(Round16<T>(_mm512_mul_ps(lo, Load16(c + i, m))),
                                 Round16<T>(_mm512_mul_ps(neg_hi, Load16(s + i, m)))));
    const __m512 b =
        Round16<T>(_mm512_add_ps(Round16<T>(_mm512_mul_ps(hi, Load16(c + half + i, m))),
                                 Round16<T>(_mm512_mul_ps(lo, Load16(s + half + i, m)))));
    Store16(v + i, a, m);
    Store16(v + half + i, b, m);
  }
}

template <typename T>
ICAE_AVX512 void SiluMulAvx512(const T* gate_up, int64_t rows, int64_t inter, T* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const T* g = gate_up + r * 2 * inter;
    const T* u = g + inter;
    T* o = out + r * inter;
    for (int64_t i = 0; i < inter; i += 16) {
      const __mmask16 m = FirstLanes(inter - i);
      const __m512 x = Load16(g + i, m);
      const __m512 e = Exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
      const __m512 silu = Round16<T>(_mm512_div_ps(x, _mm512_add_ps(one, e)));
      Store16(o + i, Round16<T>(_mm512_mul_ps(silu, Load16(u + i, m))), m);
    }
  }
}

template <typename T>
void AddRmsNormPortable(T* x, const T* delta, int64_t rows, int64_t n, const T* weight, float eps,
                        T* out) {
  AddRmsNormBody(x, delta, rows, n, weight, eps, out);
}
template <typename T>
void SiluMulPortable(const T* gate_up, int64_t rows, int64_t inter, T* out) {
  SiluMulBody(gate_up, rows, inter, out);
}

// Values per parallel task: a decode step's few rows run inline on the caller's thread; a
// prefill's or a compression's hundreds of rows are split across the pool.
constexpr int64_t kValuesPerTask = 16 * 1024;

// f(r0, r1) over [0, rows) in pieces of at least kValuesPerTask values.
template <typename F>
void ForRows(int64_t rows, int64_t values_per_row, F&& f) {
  const int64_t grain = std::max<int64_t>(1, kValuesPerTask / std::max<int64_t>(1, values_per_row));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) { f(r0, r1); });
}

bool Vector() { return ActiveIsa() != Isa::kPortable; }

template <typename T>
void AddRmsNorm(T* x, const T* delta, int64_t rows, int64_t n, const T* weight, float eps,
                T* out) {
  const bool vector = Vector();
  ForRows(rows, n, [&](int64_t r0, int64_t r1) {
    T* xr = x + r0 * n;
    const T* dr = delta != nullptr ? delta + r0 * n : nullptr;
    vector ? AddRmsNormAvx512(xr, dr, r1 - r0, n, weight, eps, out + r0 * n)
           : AddRmsNormPortable(xr, dr, r1 - r0, n, weight, eps, out + r0 * n);
  });
}

template <typename T>
void Rope(T* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d, const T* cos,
          const T* sin) {
  const bool vector = Vector();
  const int64_t half = d / 2;
  ForRows(rows, heads * d, [&](int64_t r0, int64_t r1) {
    ForEachRopeHead(x + r0 * row_stride, r1 - r0, row_stride, heads, d, cos + r0 * d,
                    sin + r0 * d, [&](T* v, const T* c, const T* s) {
                      vector ? RopeHeadAvx512(v, c, s, half) : RopeHead(v, c, s, half);
                    });
  });
}

template <typename T>
void SiluMul(const T* gate_up, int64_t rows, int64_t inter, T* out) {
  const bool vector = Vector();
  ForRows(rows, 2 * inter, [&](int64_t r0, int64_t r1) {
    const T* g = gate_up + r0 * 2 * inter;
    vector ? SiluMulAvx512(g, r1 - r0, inter, out + r0 * inter)
           : SiluMulPortable(g, r1 - r0, inter, out + r0 * inter);
  });
}

}  // namespace

void AddRmsNormF32(float* x, const float* delta, int64_t rows, int64_t n, const float* weight,
                   float eps, float* out) {
  AddRmsNorm(x, delta, rows, n, weight, eps, out);
}
void AddRmsNormBf16(bf16* x, const bf16* delta, int64_t rows, int64_t n, const bf16* weight,
                    float eps, bf16* out) {
  AddRmsNorm(x, delta, rows, n, weight, eps, out);
}
void RopeF32(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
             const float* cos, const float* sin) {
  Rope(x, rows, row_stride, heads, d, cos, sin);
}
void RopeBf16(bf16* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
              const bf16* cos, const bf16* sin) {
  Rope(x, rows, row_stride, heads, d, cos, sin);
}
void SiluMulF32(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  SiluMul(gate_up, rows, inter, out);
}
void SiluMulBf16(const bf16* gate_up, int64_t rows, int64_t inter, bf16* out) {
  SiluMul(gate_up, rows, inter, out);
}

}  // namespace icae::kernels
