// Internal to the CPU kernels: scalar load/store of float32 and bf16 and the AVX-512 helpers the
// kernel files share. Included only by common/model/kernels/*.cc.
#ifndef ICAE_COMMON_MODEL_KERNELS_SIMD_H_
#define ICAE_COMMON_MODEL_KERNELS_SIMD_H_

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() and trip -Wmaybe-uninitialized
// in every function that inlines them (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "common/model/kernels/cpu_kernels.h"

namespace icae::kernels::internal {

template <typename T>
float Load(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, float>) {
    return p[i];
  } else {
    return Bf16ToFloat(p[i]);
  }
}

template <typename T>
void Store(T* p, int64_t i, float v) {
  if constexpr (std::is_same_v<T, float>) {
    p[i] = v;
  } else {
    p[i] = FloatToBf16(v);
  }
}


#define ICAE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define ICAE_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// The sum of the 16 lanes, by swaps within the register.
ICAE_AVX512 inline float Sum16(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));  // + the other 256-bit half
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1));  // + the neighbouring 128-bit lane
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4e));        // + the other 64 bits
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xb1));        // + the neighbouring float
  return _mm512_cvtss_f32(v);
}

ICAE_AVX512 inline __m512 LoadF32(const float* p, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, p);
}
// 16 bf16 values widened to float32.
ICAE_AVX512 inline __m512 LoadBf16AsF32(const bf16* p, __mmask16 mask) {
  const __m256i raw = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
template <typename T>
ICAE_AVX512 inline __m512 Load16(const T* p, __mmask16 mask) {
  if constexpr (std::is_same_v<T, float>) {
    return LoadF32(p, mask);
  } else {
    return LoadBf16AsF32(p, mask);
  }
}


// exp(x) as elementwise.cc's scalar Exp computes it (2^n times a degree-6 polynomial of the rest),
// 16 lanes at a time; x is clamped to [-88, 88] first (below: about 0, above: about 1.7e38).
ICAE_AVX512 inline __m512 Exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// What a T op stores for the float32 results v, widened back to float32: v itself for float32;
// for bf16 rounded to nearest even (NaN stays a quiet NaN), as LibTorch rounds.
template <typename T>
ICAE_AVX512 inline __m512 Round16(__m512 v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
    const __m512i rounded = _mm512_add_epi32(bits, bias);
    const __m512i quiet = _mm512_or_si512(bits, _mm512_set1_epi32(0x00400000));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512i out = _mm512_mask_mov_epi32(rounded, nan, quiet);
    return _mm512_castsi512_ps(_mm512_and_si512(out, _mm512_set1_epi32(0xffff0000u)));
  }
}

// Stores 16 values already representable in T (Round16<T>) under `mask`.
template <typename T>
ICAE_AVX512 inline void Store16(T* p, __m512 v, __mmask16 mask) {
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, mask, v);
  } else {
    const __m256i half = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16));
    _mm256_mask_storeu_epi16(p, mask, half);
  }
}

// The mask of the first `n` (0..16) lanes.
inline __mmask16 FirstLanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
}


}  // namespace icae::kernels::internal

#endif  // ICAE_COMMON_MODEL_KERNELS_SIMD_H_
