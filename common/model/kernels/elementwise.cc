// The decode step's element-wise kernels (cpu_kernels.h): residual add + RMSNorm, RoPE in place,
// SiLU x up. A decode step has a few rows of a few thousand values each, so one call per layer
// stage instead of LibTorch's eight to ten (each a dispatch, an allocation and a pass) is the whole
// gain; the arithmetic is float32 and rounds where LibTorch's ops round (bfloat16 storage rounds
// after each op). One body, compiled twice: for AVX-512 (the compiler vectorises the loops) and
// for the baseline target; no thread split (the work is microseconds).
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/model/kernels/cpu_kernels.h"

namespace icae::kernels {
namespace {

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

template <typename T>
inline void RopeBody(T* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
                     const T* cos, const T* sin) {
  const int64_t half = d / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const T* c = cos + r * d;
    const T* s = sin + r * d;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + r * row_stride + h * d;
      // out[i] = x[i] cos[i] - x[i + half] sin[i]; out[i + half] = x[i + half] cos[i + half] +
      // x[i] sin[i + half]; each product and the sum rounded as T's ops round them.
      for (int64_t i = 0; i < half; ++i) {
        const float lo = Get(v, i), hi = Get(v, i + half);
        const float a = Round<T>(Round<T>(lo * Get(c, i)) + Round<T>(-hi * Get(s, i)));
        const float b =
            Round<T>(Round<T>(hi * Get(c, i + half)) + Round<T>(lo * Get(s, i + half)));
        Put(v, i, a);
        Put(v, i + half, b);
      }
    }
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

#define ICAE_VEC_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

template <typename T>
ICAE_VEC_TARGET void AddRmsNormAvx512(T* x, const T* delta, int64_t rows, int64_t n,
                                      const T* weight, float eps, T* out) {
  AddRmsNormBody(x, delta, rows, n, weight, eps, out);
}
template <typename T>
void AddRmsNormPortable(T* x, const T* delta, int64_t rows, int64_t n, const T* weight, float eps,
                        T* out) {
  AddRmsNormBody(x, delta, rows, n, weight, eps, out);
}
template <typename T>
ICAE_VEC_TARGET void RopeAvx512(T* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
                                const T* cos, const T* sin) {
  RopeBody(x, rows, row_stride, heads, d, cos, sin);
}
template <typename T>
void RopePortable(T* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d, const T* cos,
                  const T* sin) {
  RopeBody(x, rows, row_stride, heads, d, cos, sin);
}
template <typename T>
ICAE_VEC_TARGET void SiluMulAvx512(const T* gate_up, int64_t rows, int64_t inter, T* out) {
  SiluMulBody(gate_up, rows, inter, out);
}
template <typename T>
void SiluMulPortable(const T* gate_up, int64_t rows, int64_t inter, T* out) {
  SiluMulBody(gate_up, rows, inter, out);
}

bool Vector() { return ActiveIsa() != Isa::kPortable; }

}  // namespace

void AddRmsNormF32(float* x, const float* delta, int64_t rows, int64_t n, const float* weight,
                   float eps, float* out) {
  Vector() ? AddRmsNormAvx512(x, delta, rows, n, weight, eps, out)
           : AddRmsNormPortable(x, delta, rows, n, weight, eps, out);
}
void AddRmsNormBf16(bf16* x, const bf16* delta, int64_t rows, int64_t n, const bf16* weight,
                    float eps, bf16* out) {
  Vector() ? AddRmsNormAvx512(x, delta, rows, n, weight, eps, out)
           : AddRmsNormPortable(x, delta, rows, n, weight, eps, out);
}
void RopeF32(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
             const float* cos, const float* sin) {
  Vector() ? RopeAvx512(x, rows, row_stride, heads, d, cos, sin)
           : RopePortable(x, rows, row_stride, heads, d, cos, sin);
}
void RopeBf16(bf16* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
              const bf16* cos, const bf16* sin) {
  Vector() ? RopeAvx512(x, rows, row_stride, heads, d, cos, sin)
           : RopePortable(x, rows, row_stride, heads, d, cos, sin);
}
void SiluMulF32(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  Vector() ? SiluMulAvx512(gate_up, rows, inter, out) : SiluMulPortable(gate_up, rows, inter, out);
}
void SiluMulBf16(const bf16* gate_up, int64_t rows, int64_t inter, bf16* out) {
  Vector() ? SiluMulAvx512(gate_up, rows, inter, out) : SiluMulPortable(gate_up, rows, inter, out);
}

}  // namespace icae::kernels
