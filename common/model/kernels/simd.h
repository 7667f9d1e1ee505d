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


}  // namespace icae::kernels::internal

#endif  // ICAE_COMMON_MODEL_KERNELS_SIMD_H_
