// Internal to the CPU kernels: the tile operations of the attention kernels that score many
// query rows against a block of keys at once (prefill_attention.cc; decode_attention.cc for a
// prefill chunk's run of rows). The block's keys are transposed (column c of key j at
// kt[c * ld + j]), so a tile of scores is outer products with no horizontal sums; the softmax
// runs online per row under a 64-bit mask of the keys it sees. Each operation has a portable
// form and an AVX-512 one with the same contract. Included only by common/model/kernels/*.cc.
#ifndef ICAE_COMMON_MODEL_KERNELS_ATTENTION_TILE_H_
#define ICAE_COMMON_MODEL_KERNELS_ATTENTION_TILE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "common/model/kernels/simd.h"

namespace icae::kernels::internal {

inline constexpr int64_t kKeyBlock = 64;  // One bit per key of a block in a uint64_t; four vectors.
inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- Portable tile operations ----

// s[r * kKeyBlock + j] = q_r . key_j for r < rows, j < kKeyBlock; the block's keys are
// transposed: key j's column c at kt[c * ld + j].
inline void ScoresTilePortable(const float* q, int64_t rows, int64_t d, const float* kt, int64_t ld,
                               float* s) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * kKeyBlock;
    std::fill(sr, sr + kKeyBlock, 0.0f);
    for (int64_t c = 0; c < d; ++c) {
      const float qc = q[r * d + c];
      for (int64_t j = 0; j < kKeyBlock; ++j) sr[j] += qc * kt[c * ld + j];
    }
  }
}

inline float MaskedMaxPortable(const float* s, uint64_t bits) {
  float m = kNegInf;
  for (int64_t j = 0; j < kKeyBlock; ++j) {
    if ((bits >> j) & 1) m = std::max(m, s[j]);
  }
  return m;
}

// s[j] = exp(s[j] - max) where bit j is set, else 0; returns the sum.
inline float ExpRowPortable(float* s, uint64_t bits, float max) {
  float sum = 0;
  for (int64_t j = 0; j < kKeyBlock; ++j) {
    s[j] = (bits >> j) & 1 ? std::exp(s[j] - max) : 0.0f;
    sum += s[j];
  }
  return sum;
}

// o[r] = o[r] * corr[r] + sum_{j < nb} p[r * kKeyBlock + j] * v[j]; o and v rows of d.
inline void AccumulateTilePortable(float* o, int64_t rows, int64_t d, const float* p,
                                   const float* v, int64_t nb, const float* corr) {
  for (int64_t r = 0; r < rows; ++r) {
    float* orow = o + r * d;
    for (int64_t c = 0; c < d; ++c) orow[c] *= corr[r];
    for (int64_t j = 0; j < nb; ++j) {
      const float pj = p[r * kKeyBlock + j];
      for (int64_t c = 0; c < d; ++c) orow[c] += pj * v[j * d + c];
    }
  }
}

// ---- AVX-512 tile operations (the same contracts) ----

inline constexpr int kMaxRows = 6;  // Accumulators: 6 rows x 4 vectors + 4 loads + 1 broadcast.

template <int R>
ICAE_AVX512 void ScoresRowsAvx512(const float* q, int64_t d, const float* kt, int64_t ld,
                                  float* s) {
  __m512 acc[R][4];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < d; ++c) {
    const float* k = kt + c * ld;
    const __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
    const __m512 k2 = _mm512_loadu_ps(k + 32), k3 = _mm512_loadu_ps(k + 48);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * d + c]);
      acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qb, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qb, k3, acc[r][3]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) _mm512_storeu_ps(s + r * kKeyBlock + 16 * u, acc[r][u]);
  }
}

ICAE_AVX512 inline void ScoresTileAvx512(const float* q, int64_t rows, int64_t d, const float* kt,
                                         int64_t ld, float* s) {
  int64_t r = 0;
  for (; r + kMaxRows <= rows; r += kMaxRows) {
    ScoresRowsAvx512<kMaxRows>(q + r * d, d, kt, ld, s + r * kKeyBlock);
  }
  switch (rows - r) {
    case 5:
      return ScoresRowsAvx512<5>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 4:
      return ScoresRowsAvx512<4>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 3:
      return ScoresRowsAvx512<3>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 2:
      return ScoresRowsAvx512<2>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 1:
      return ScoresRowsAvx512<1>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    default:
      return;
  }
}

ICAE_AVX512 inline float MaskedMaxAvx512(const float* s, uint64_t bits) {
  __m512 m = _mm512_set1_ps(kNegInf);
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u) {
    const __mmask16 k = static_cast<__mmask16>(bits >> (16 * u));
    m = _mm512_mask_max_ps(m, k, m, _mm512_loadu_ps(s + 16 * u));
  }
  return _mm512_reduce_max_ps(m);
}

ICAE_AVX512 inline float ExpRowAvx512(float* s, uint64_t bits, float max) {
  const __m512 mv = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u) {
    const __mmask16 k = static_cast<__mmask16>(bits >> (16 * u));
    const __m512 e = _mm512_maskz_mov_ps(k, Exp16(_mm512_sub_ps(_mm512_loadu_ps(s + 16 * u), mv)));
    _mm512_storeu_ps(s + 16 * u, e);
    sum = _mm512_add_ps(sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

// Columns c0 .. c0 + 16 * NV of R rows (the last vector under `last`).
template <int R, int NV>
ICAE_AVX512 void AccumulateRowsAvx512(float* o, int64_t d, const float* p, const float* v,
                                      int64_t nb, const float* corr, __mmask16 last) {
  __m512 acc[R][NV];
  auto mask = [&](int u) { return u == NV - 1 ? last : static_cast<__mmask16>(0xffff); };
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m512 cr = _mm512_set1_ps(corr[r]);
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) {
      acc[r][u] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask(u), o + r * d + 16 * u), cr);
    }
  }
  for (int64_t j = 0; j < nb; ++j) {
    __m512 vv[NV];
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) vv[u] = _mm512_maskz_loadu_ps(mask(u), v + j * d + 16 * u);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 pb = _mm512_set1_ps(p[r * kKeyBlock + j]);
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) acc[r][u] = _mm512_fmadd_ps(pb, vv[u], acc[r][u]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) _mm512_mask_storeu_ps(o + r * d + 16 * u, mask(u), acc[r][u]);
  }
}

using AccumulateFn = void (*)(float*, int64_t, const float*, const float*, int64_t, const float*,
                              __mmask16);
template <int R>
inline constexpr AccumulateFn kAccumulateByWidth[4] = {
    AccumulateRowsAvx512<R, 1>, AccumulateRowsAvx512<R, 2>, AccumulateRowsAvx512<R, 3>,
    AccumulateRowsAvx512<R, 4>};
inline constexpr const AccumulateFn* kAccumulate[kMaxRows + 1] = {nullptr,
                                                                  kAccumulateByWidth<1>,
                                                                  kAccumulateByWidth<2>,
                                                                  kAccumulateByWidth<3>,
                                                                  kAccumulateByWidth<4>,
                                                                  kAccumulateByWidth<5>,
                                                                  kAccumulateByWidth<6>};

inline void AccumulateTileAvx512(float* o, int64_t rows, int64_t d, const float* p, const float* v,
                                 int64_t nb, const float* corr) {
  for (int64_t r = 0; r < rows; r += kMaxRows) {
    const int64_t n = std::min<int64_t>(kMaxRows, rows - r);
    // Up to 64 columns (four vectors) per pass, so that the accumulators stay in registers.
    for (int64_t c0 = 0; c0 < d; c0 += 64) {
      const int64_t width = std::min<int64_t>(64, d - c0);
      const int64_t vectors = (width + 15) / 16, tail = width - 16 * (vectors - 1);
      const __mmask16 last = tail == 16 ? 0xffff : static_cast<__mmask16>((1u << tail) - 1);
      kAccumulate[n][vectors - 1](o + r * d + c0, d, p + r * kKeyBlock, v + c0, nb, corr + r, last);
    }
  }
}

// Bits lo .. hi (inclusive, within 0 .. 63) set; none when hi < lo.
inline uint64_t BitRange(int64_t lo, int64_t hi) {
  if (hi < lo) return 0;
  const int64_t n = hi - lo + 1;
  return (n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1) << lo;
}

// A block of up to kKeyBlock keys into the tile layout: kt[c * ld + j] = keys[j][c] for j < n,
// c < d (keys[j] points at key j's d values), and zero for n <= j < kKeyBlock.
template <typename T>
inline void TransposeKeysPortable(const T* const* keys, int64_t n, int64_t d, float* kt,
                                  int64_t ld) {
  for (int64_t c = 0; c < d; ++c) {
    for (int64_t j = 0; j < kKeyBlock; ++j) kt[c * ld + j] = j < n ? Load(keys[j], c) : 0.0f;
  }
}

// The even (lo) or odd (hi) 64-bit halves of a and b's 128-bit lanes, interleaved.
ICAE_AVX512 inline __m512 Lo64(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
ICAE_AVX512 inline __m512 Hi64(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

// The 16 x 16 float32 matrix in r (row i in r[i]) transposed in place: 32-bit and 64-bit
// interleaves within 128-bit lanes, then two rounds of 128-bit lane shuffles.
ICAE_AVX512 inline void Transpose16x16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {
    r[i] = Lo64(t[i], t[i + 2]);
    r[i + 1] = Hi64(t[i], t[i + 2]);
    r[i + 2] = Lo64(t[i + 1], t[i + 3]);
    r[i + 3] = Hi64(t[i + 1], t[i + 3]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// TransposeKeysPortable's contract, 16 x 16 blocks at a time in registers.
template <typename T>
ICAE_AVX512 inline void TransposeKeysAvx512(const T* const* keys, int64_t n, int64_t d, float* kt,
                                            int64_t ld) {
  for (int64_t j0 = 0; j0 < kKeyBlock; j0 += 16) {
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      const int64_t w = std::min<int64_t>(16, d - c0);
      const __mmask16 mask = w == 16 ? 0xffff : static_cast<__mmask16>((1u << w) - 1);
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        r[i] = j0 + i < n ? Load16(keys[j0 + i] + c0, mask) : _mm512_setzero_ps();
      }
      Transpose16x16(r);
      for (int64_t i = 0; i < w; ++i) _mm512_storeu_ps(kt + (c0 + i) * ld + j0, r[i]);
    }
  }
}

template <typename T>
inline void TransposeKeys(bool avx, const T* const* keys, int64_t n, int64_t d, float* kt,
                          int64_t ld) {
  avx ? TransposeKeysAvx512(keys, n, d, kt, ld) : TransposeKeysPortable(keys, n, d, kt, ld);
}

// One query row's online-softmax step over a tile: its scores `s` (kKeyBlock of them) become
// probabilities under `bits` (zero elsewhere), its running maximum *m and sum *l move on, and the
// factor its accumulator must be scaled by is returned (1 when no key of the tile is its).
inline float SoftmaxRowStep(bool avx, float* s, uint64_t bits, float* m, float* l) {
  if (bits == 0) {
    std::fill(s, s + kKeyBlock, 0.0f);
    return 1.0f;
  }
  const float block_max = avx ? MaskedMaxAvx512(s, bits) : MaskedMaxPortable(s, bits);
  const float new_max = std::max(*m, block_max);
  const float corr = std::exp(*m - new_max);
  const float sum = avx ? ExpRowAvx512(s, bits, new_max) : ExpRowPortable(s, bits, new_max);
  *l = *l * corr + sum;
  *m = new_max;
  return corr;
}

inline void ScoresTile(bool avx, const float* q, int64_t rows, int64_t d, const float* kt,
                       int64_t ld, float* s) {
  avx ? ScoresTileAvx512(q, rows, d, kt, ld, s) : ScoresTilePortable(q, rows, d, kt, ld, s);
}

inline void AccumulateTile(bool avx, float* o, int64_t rows, int64_t d, const float* p,
                           const float* v, int64_t nb, const float* corr) {
  avx ? AccumulateTileAvx512(o, rows, d, p, v, nb, corr)
      : AccumulateTilePortable(o, rows, d, p, v, nb, corr);
}

}  // namespace icae::kernels::internal

#endif  // ICAE_COMMON_MODEL_KERNELS_ATTENTION_TILE_H_
