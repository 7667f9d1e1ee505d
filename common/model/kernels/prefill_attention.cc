// Tiled causal attention for prefill and compression (cpu_kernels.h): PrefillAttentionF32 /
// PrefillAttentionBf16. Per sequence, its keys are first transposed (and its values widened)
// into float32 scratch once, so that a tile of scores is outer products (no horizontal sums).
// Then one task is a block of up to kRowBlock query rows of one head; it walks the key blocks
// its rows can see, kKeyBlock keys at a time: a tile of scores, an online softmax over the tile
// under a per-row bit mask, then the tile's values accumulated into the rows.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/model/kernels/cpu_kernels.h"
#include "common/model/kernels/simd.h"

namespace icae::kernels {
namespace {

using internal::Load;
using internal::Store;

constexpr int64_t kRowBlock = 64;
constexpr int64_t kKeyBlock = 64;  // One bit per key of a block in a uint64_t; four vectors.
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- Portable tile operations ----

// s[r * kKeyBlock + j] = q_r . key_j for r < rows, j < kKeyBlock; the block's keys are
// transposed: key j's column c at kt[c * ld + j].
void ScoresTilePortable(const float* q, int64_t rows, int64_t d, const float* kt, int64_t ld,
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

float MaskedMaxPortable(const float* s, uint64_t bits) {
  float m = kNegInf;
  for (int64_t j = 0; j < kKeyBlock; ++j) {
    if ((bits >> j) & 1) m = std::max(m, s[j]);
  }
  return m;
}

// s[j] = exp(s[j] - max) where bit j is set, else 0; returns the sum.
float ExpRowPortable(float* s, uint64_t bits, float max) {
  float sum = 0;
  for (int64_t j = 0; j < kKeyBlock; ++j) {
    s[j] = (bits >> j) & 1 ? std::exp(s[j] - max) : 0.0f;
    sum += s[j];
  }
  return sum;
}

// o[r] = o[r] * corr[r] + sum_{j < nb} p[r * kKeyBlock + j] * v[j]; o and v rows of d.
void AccumulateTilePortable(float* o, int64_t rows, int64_t d, const float* p, const float* v,
                            int64_t nb, const float* corr) {
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

constexpr int kMaxRows = 6;  // Accumulators: 6 rows x 4 vectors + 4 loads + 1 broadcast.

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

ICAE_AVX512 void ScoresTileAvx512(const float* q, int64_t rows, int64_t d, const float* kt,
                                  int64_t ld, float* s) {
  int64_t r = 0;
  for (; r + kMaxRows <= rows; r += kMaxRows) {
    ScoresRowsAvx512<kMaxRows>(q + r * d, d, kt, ld, s + r * kKeyBlock);
  }
  switch (rows - r) {
    case 5: return ScoresRowsAvx512<5>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 4: return ScoresRowsAvx512<4>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 3: return ScoresRowsAvx512<3>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 2: return ScoresRowsAvx512<2>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    case 1: return ScoresRowsAvx512<1>(q + r * d, d, kt, ld, s + r * kKeyBlock);
    default: return;
  }
}

// exp(x) for x <= 0 as elementwise.cc's Exp computes it (2^n times a degree-6 polynomial of the
// rest), 16 lanes at a time; x below -88 gives 0.
ICAE_AVX512 inline __m512 Exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.0f));
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

ICAE_AVX512 float MaskedMaxAvx512(const float* s, uint64_t bits) {
  __m512 m = _mm512_set1_ps(kNegInf);
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u) {
    const __mmask16 k = static_cast<__mmask16>(bits >> (16 * u));
    m = _mm512_mask_max_ps(m, k, m, _mm512_loadu_ps(s + 16 * u));
  }
  return _mm512_reduce_max_ps(m);
}

ICAE_AVX512 float ExpRowAvx512(float* s, uint64_t bits, float max) {
  const __m512 mv = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u) {
    const __mmask16 k = static_cast<__mmask16>(bits >> (16 * u));
    const __m512 e =
        _mm512_maskz_mov_ps(k, Exp16(_mm512_sub_ps(_mm512_loadu_ps(s + 16 * u), mv)));
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
constexpr AccumulateFn kAccumulateByWidth[4] = {
    AccumulateRowsAvx512<R, 1>, AccumulateRowsAvx512<R, 2>, AccumulateRowsAvx512<R, 3>,
    AccumulateRowsAvx512<R, 4>};
constexpr const AccumulateFn* kAccumulate[kMaxRows + 1] = {
    nullptr,
    kAccumulateByWidth<1>,
    kAccumulateByWidth<2>,
    kAccumulateByWidth<3>,
    kAccumulateByWidth<4>,
    kAccumulateByWidth<5>,
    kAccumulateByWidth<6>};

void AccumulateTileAvx512(float* o, int64_t rows, int64_t d, const float* p, const float* v,
                          int64_t nb, const float* corr) {
  for (int64_t r = 0; r < rows; r += kMaxRows) {
    const int64_t n = std::min<int64_t>(kMaxRows, rows - r);
    // Up to 64 columns (four vectors) per pass, so that the accumulators stay in registers.
    for (int64_t c0 = 0; c0 < d; c0 += 64) {
      const int64_t width = std::min<int64_t>(64, d - c0);
      const int64_t vectors = (width + 15) / 16, tail = width - 16 * (vectors - 1);
      const __mmask16 last = tail == 16 ? 0xffff : static_cast<__mmask16>((1u << tail) - 1);
      kAccumulate[n][vectors - 1](o + r * d + c0, d, p + r * kKeyBlock, v + c0, nb, corr + r,
                                  last);
    }
  }
}

// ---- The tiled loop ----

// Bits lo .. hi (inclusive, within 0 .. 63) set; none when hi < lo.
uint64_t BitRange(int64_t lo, int64_t hi) {
  if (hi < lo) return 0;
  const int64_t n = hi - lo + 1;
  return (n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1) << lo;
}

// Per-thread scratch of a task: its query rows (scaled), one tile of scores, the rows'
// accumulators and online-softmax state.
struct Scratch {
  std::vector<float> q, s, o, m, l, corr;
  std::vector<int64_t> pos;
};

template <typename T>
void PrefillAttention(const PrefillAttentionArgs& a, const T* q, const T* keys, const T* values,
                      T* out) {
  const int64_t d = a.d, group = a.heads / a.kv_heads;
  const int64_t row_blocks = (a.rows + kRowBlock - 1) / kRowBlock;
  const int64_t key_blocks = (a.keys + kKeyBlock - 1) / kKeyBlock, ld = key_blocks * kKeyBlock;
  const bool avx = ActiveIsa() != Isa::kPortable;
  // One sequence's keys, transposed ([kv_heads][d][ld], zero past the last key), and values
  // ([kv_heads][keys][d]) in float32: made once and read by every row block of its heads.
  // (The calling thread's buffers: inside the parallel regions a thread_local name would be the
  // worker's own, so the tasks see them through these pointers.)
  thread_local std::vector<float> kt_store, v_store;
  kt_store.resize(a.kv_heads * d * ld);
  v_store.resize(a.kv_heads * a.keys * d);
  float* const kt_all = kt_store.data();
  float* const v_all = v_store.data();
  for (int64_t b = 0; b < a.batch; ++b) {
    at::parallel_for(0, a.kv_heads * key_blocks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t kvh = t / key_blocks, j0 = t % key_blocks * kKeyBlock;
        const int64_t nb = std::min(kKeyBlock, a.keys - j0);
        const T* kb = keys + b * a.k_stride[0] + kvh * a.k_stride[1];
        const T* vb = values + b * a.v_stride[0] + kvh * a.v_stride[1];
        float* kt = kt_all + kvh * d * ld + j0;
        float* vt = v_all + (kvh * a.keys + j0) * d;
        for (int64_t j = 0; j < nb; ++j) {
          const T* kj = kb + (j0 + j) * a.k_stride[2];
          const T* vj = vb + (j0 + j) * a.v_stride[2];
          for (int64_t c = 0; c < d; ++c) {
            kt[c * ld + j] = Load(kj, c);
            vt[j * d + c] = Load(vj, c);
          }
        }
        for (int64_t c = 0; c < d; ++c) std::fill(kt + c * ld + nb, kt + c * ld + kKeyBlock, 0.0f);
      }
    });
    const uint8_t* valid = a.key_valid != nullptr ? a.key_valid + b * a.keys : nullptr;
    at::parallel_for(0, a.heads * row_blocks, 1, [&](int64_t t0, int64_t t1) {
      thread_local Scratch w;
      w.q.resize(kRowBlock * d);
      w.s.resize(kRowBlock * kKeyBlock);
      w.o.resize(kRowBlock * d);
      w.m.resize(kRowBlock);
      w.l.resize(kRowBlock);
      w.corr.resize(kRowBlock);
      w.pos.resize(kRowBlock);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t rb = t % row_blocks, h = t / row_blocks, kvh = h / group;
        const int64_t row0 = rb * kRowBlock, nr = std::min(kRowBlock, a.rows - row0);
        const T* qb = q + b * a.q_stride[0] + h * a.q_stride[1] + row0 * a.q_stride[2];
        const float* kt = kt_all + kvh * d * ld;
        const float* vt = v_all + kvh * a.keys * d;
        int64_t pmin = std::numeric_limits<int64_t>::max(), pmax = -1;
        for (int64_t r = 0; r < nr; ++r) {
          w.pos[r] = a.positions != nullptr ? a.positions[b * a.rows + row0 + r]
                                            : a.keys - a.rows + row0 + r;
          pmin = std::min(pmin, w.pos[r]);
          pmax = std::max(pmax, w.pos[r]);
          for (int64_t c = 0; c < d; ++c) {
            w.q[r * d + c] = Load(qb + r * a.q_stride[2], c) * a.scale;
          }
        }
        std::fill(w.o.begin(), w.o.begin() + nr * d, 0.0f);
        std::fill(w.m.begin(), w.m.begin() + nr, kNegInf);
        std::fill(w.l.begin(), w.l.begin() + nr, 0.0f);
        // The keys some row of the block sees: [first, end).
        const int64_t first = a.window > 0 ? std::max<int64_t>(0, pmin - a.window + 1) : 0;
        const int64_t end = std::min(a.keys, pmax + 1);
        for (int64_t j0 = first / kKeyBlock * kKeyBlock; j0 < end; j0 += kKeyBlock) {
          const int64_t nb = std::min(kKeyBlock, end - j0);
          uint64_t valid_bits = ~uint64_t{0};
          if (valid != nullptr) {
            valid_bits = 0;
            for (int64_t j = 0; j < nb; ++j) valid_bits |= uint64_t{valid[j0 + j] != 0} << j;
          }
          if (avx) {
            ScoresTileAvx512(w.q.data(), nr, d, kt + j0, ld, w.s.data());
          } else {
            ScoresTilePortable(w.q.data(), nr, d, kt + j0, ld, w.s.data());
          }
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t p = w.pos[r];
            const int64_t lo = a.window > 0 ? std::max(j0, p - a.window + 1) : j0;
            const uint64_t own = p >= j0 && p < j0 + nb ? uint64_t{1} << (p - j0) : 0;
            const uint64_t bits =
                BitRange(lo - j0, std::min(j0 + nb - 1, p) - j0) & (valid_bits | own);
            float* sr = w.s.data() + r * kKeyBlock;
            if (bits == 0) {
              std::fill(sr, sr + kKeyBlock, 0.0f);
              w.corr[r] = 1.0f;
              continue;
            }
            const float block_max =
                avx ? MaskedMaxAvx512(sr, bits) : MaskedMaxPortable(sr, bits);
            const float new_max = std::max(w.m[r], block_max);
            w.corr[r] = std::exp(w.m[r] - new_max);
            const float sum =
                avx ? ExpRowAvx512(sr, bits, new_max) : ExpRowPortable(sr, bits, new_max);
            w.l[r] = w.l[r] * w.corr[r] + sum;
            w.m[r] = new_max;
          }
          const float* vj = vt + j0 * d;
          if (avx) {
            AccumulateTileAvx512(w.o.data(), nr, d, w.s.data(), vj, nb, w.corr.data());
          } else {
            AccumulateTilePortable(w.o.data(), nr, d, w.s.data(), vj, nb, w.corr.data());
          }
        }
        T* ob = out + b * a.out_stride[0] + h * a.out_stride[1] + row0 * a.out_stride[2];
        for (int64_t r = 0; r < nr; ++r) {
          const float inv = 1.0f / w.l[r];
          for (int64_t c = 0; c < d; ++c) {
            Store(ob + r * a.out_stride[2], c, w.o[r * d + c] * inv);
          }
        }
      }
    });
  }
}

}  // namespace

void PrefillAttentionF32(const PrefillAttentionArgs& args, const float* q, const float* keys,
                         const float* values, float* out) {
  PrefillAttention(args, q, keys, values, out);
}

void PrefillAttentionBf16(const PrefillAttentionArgs& args, const bf16* q, const bf16* keys,
                          const bf16* values, bf16* out) {
  PrefillAttention(args, q, keys, values, out);
}

}  // namespace icae::kernels
