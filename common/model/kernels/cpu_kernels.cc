#include "common/model/kernels/cpu_kernels.h"

#include <ATen/Parallel.h>
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() and trip -Wmaybe-uninitialized
// in every function that inlines them (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace icae::kernels {

float Bf16ToFloat(bf16 x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

bf16 FloatToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if (std::isnan(x)) return static_cast<bf16>((bits >> 16) | 0x40);  // Quiet NaN.
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<bf16>(bits >> 16);
}

std::string IsaName(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Bf16:
      return "avx512-bf16";
  }
  return "?";
}

Isa DetectIsa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl")) {
      return Isa::kPortable;
    }
    return __builtin_cpu_supports("avx512bf16") ? Isa::kAvx512Bf16 : Isa::kAvx512;
  }();
  return isa;
}

namespace {
std::atomic<int> isa_cap{static_cast<int>(Isa::kAvx512Bf16)};
}  // namespace

Isa ActiveIsa() {
  return static_cast<Isa>(std::min(static_cast<int>(DetectIsa()), isa_cap.load()));
}

void SetIsaCap(std::optional<Isa> cap) {
  isa_cap.store(static_cast<int>(cap.value_or(Isa::kAvx512Bf16)));
}

namespace {

// Output columns per parallel task: enough rows that a task reads a few hundred KB of weights.
int64_t ColumnGrain(int64_t k, int64_t elem) {
  return std::max<int64_t>(8, (256 * 1024) / std::max<int64_t>(1, k * elem));
}

// ---------------------------------------------------------------------------------------------
// Portable versions: plain loops, float32 accumulation.

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

template <typename T>
void LinearPortable(const T* x, int64_t rows, int64_t k, const T* w, int64_t n0, int64_t n1,
                    int64_t n, T* y) {
  std::vector<float> xf(rows * k);
  for (int64_t i = 0; i < rows * k; ++i) xf[i] = Load(x, i);
  for (int64_t j = n0; j < n1; ++j) {
    const T* wj = w + j * k;
    for (int64_t m = 0; m < rows; ++m) {
      const float* xm = xf.data() + m * k;
      float acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += xm[i] * Load(wj, i);
      Store(y, m * n + j, acc);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512.

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

// How many blocks of rows ahead the weight rows are prefetched.
constexpr int kPrefetchBlocks = 1;

// R weight rows against MG inputs, 16 values of k at a time (float32 FMAs; bf16 widened to
// float32). R * MG accumulators stay in registers; the next rows are prefetched so that each
// core keeps several memory streams in flight.
template <typename T, int R, int MG>
ICAE_AVX512 void LinearRowsAvx512(const T* x, int64_t k, const T* w, int64_t rows_left,
                                  float* out) {
  __m512 acc[R][MG];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) acc[r][m] = _mm512_setzero_ps();
  }
  const T* wr[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) wr[r] = w + std::min<int64_t>(r, rows_left - 1) * k;
  const char* next = reinterpret_cast<const char*>(w + kPrefetchBlocks * R * k);
  const bool prefetch = rows_left > (kPrefetchBlocks + 1) * R;
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    if (prefetch && (i * static_cast<int64_t>(sizeof(T))) % 64 == 0) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(next + r * k * static_cast<int64_t>(sizeof(T)) + i * sizeof(T), _MM_HINT_T0);
      }
    }
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = Load16(wr[r] + i, 0xffff);
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) {
      const __m512 xv = Load16(x + m * k + i, 0xffff);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
    }
  }
  if (i < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - i)) - 1);
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = Load16(wr[r] + i, mask);
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) {
      const __m512 xv = Load16(x + m * k + i, mask);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) out[r * 8 + m] = Sum16(acc[r][m]);
  }
}

// The same with VDPBF16PS: 32 bf16 products per instruction, summed in pairs into float32.
template <int R, int MG>
ICAE_AVX512_BF16 void LinearRowsBf16Dp(const bf16* x, int64_t k, const bf16* w, int64_t rows_left,
                                       float* out) {
  __m512 acc[R][MG];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) acc[r][m] = _mm512_setzero_ps();
  }
  const bf16* wr[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) wr[r] = w + std::min<int64_t>(r, rows_left - 1) * k;
  const char* next = reinterpret_cast<const char*>(w + kPrefetchBlocks * R * k);
  const bool prefetch = rows_left > (kPrefetchBlocks + 1) * R;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    if (prefetch) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch(next + (r * k + i) * 2, _MM_HINT_T0);
    }
    __m512bh wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_loadu_si512(wr[r] + i);
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + m * k + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][m] = _mm512_dpbf16_ps(acc[r][m], wv[r], xv);
    }
  }
  if (i < k) {
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (k - i)) - 1);
    __m512bh wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(mask, wr[r] + i);
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + m * k + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][m] = _mm512_dpbf16_ps(acc[r][m], wv[r], xv);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) out[r * 8 + m] = Sum16(acc[r][m]);
  }
}

// out[r * 8 + m] for R rows from `w` (the last row repeated when fewer than R are left; the
// `rows_left` rows from `w` on are all this task's) and MG inputs from `x`.
using RowsFn = void (*)(const void* x, int64_t k, const void* w, int64_t rows_left, float* out);

template <typename T, int R, int MG>
void RowsAvx512Erased(const void* x, int64_t k, const void* w, int64_t rows_left, float* out) {
  LinearRowsAvx512<T, R, MG>(static_cast<const T*>(x), k, static_cast<const T*>(w), rows_left,
                             out);
}
template <int R, int MG>
void RowsBf16DpErased(const void* x, int64_t k, const void* w, int64_t rows_left, float* out) {
  LinearRowsBf16Dp<R, MG>(static_cast<const bf16*>(x), k, static_cast<const bf16*>(w), rows_left,
                          out);
}

// Rows per block: 4, so that each core keeps 4 weight streams (plus their prefetches) in flight;
// inputs go in groups of at most kGroup, so a block's 4 x kGroup accumulators stay in registers.
constexpr int kGroup = 4;
// A single input streams 8 rows at once (8 accumulators); groups of 2-4 inputs 4 rows.
constexpr int RowsFor(int mg) { return mg == 1 ? 8 : 4; }
constexpr int kMaxBlockRows = 8;

template <typename T, int... MG>
constexpr std::array<RowsFn, sizeof...(MG)> AvxTable(std::integer_sequence<int, MG...>) {
  return {RowsAvx512Erased<T, RowsFor(MG + 1), MG + 1>...};
}
template <int... MG>
constexpr std::array<RowsFn, sizeof...(MG)> DpTable(std::integer_sequence<int, MG...>) {
  return {RowsBf16DpErased<RowsFor(MG + 1), MG + 1>...};
}

// The kernel for a group of 1..kGroup inputs.
template <typename T>
RowsFn RowsKernel(int mg, bool dp) {
  static constexpr auto kAvx = AvxTable<T>(std::make_integer_sequence<int, kGroup>());
  static constexpr auto kDp = DpTable(std::make_integer_sequence<int, kGroup>());
  if constexpr (std::is_same_v<T, bf16>) {
    if (dp) return kDp[mg - 1];
  }
  return kAvx[mg - 1];
}

// Columns [n0, n1) of y for every input row, RowsFor(group) weight rows at a time; inputs in
// groups of at most kGroup (the block's weight rows stay in L1 between groups, so memory reads
// each weight once).
template <typename T>
void LinearAvx512(const T* x, int64_t rows, int64_t k, const T* w, int64_t n0, int64_t n1,
                  int64_t n, T* y, bool dp) {
  float out[kMaxBlockRows * 8];
  const int64_t block = RowsFor(static_cast<int>(std::min<int64_t>(kGroup, rows)));
  for (int64_t j = n0; j < n1; j += block) {
    const int64_t valid = std::min<int64_t>(block, n1 - j);
    for (int64_t m0 = 0; m0 < rows; m0 += kGroup) {
      const int mg = static_cast<int>(std::min<int64_t>(kGroup, rows - m0));
      RowsKernel<T>(mg, dp)(x + m0 * k, k, w + j * k, n1 - j, out);
      for (int m = 0; m < mg; ++m) {
        for (int64_t r = 0; r < valid; ++r) Store(y, (m0 + m) * n + j + r, out[r * 8 + m]);
      }
    }
  }
}

template <typename T>
void SmallBatchLinear(const T* x, int64_t rows, int64_t k, const T* w, int64_t n, T* y) {
  const Isa isa = ActiveIsa();
  const int64_t grain = ColumnGrain(k, sizeof(T));
  // Tasks own whole blocks of kMaxBlockRows columns, so a block never straddles two threads.
  at::parallel_for(0, (n + kMaxBlockRows - 1) / kMaxBlockRows,
                   (grain + kMaxBlockRows - 1) / kMaxBlockRows, [&](int64_t p0, int64_t p1) {
    const int64_t n0 = kMaxBlockRows * p0, n1 = std::min(n, kMaxBlockRows * p1);
    if (isa == Isa::kPortable) {
      LinearPortable(x, rows, k, w, n0, n1, n, y);
    } else {
      LinearAvx512(x, rows, k, w, n0, n1, n, y, isa == Isa::kAvx512Bf16);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Decode attention.

constexpr int64_t kKeyBlock = 128;

// scores[g * nb + t] = scale * q_g . key_t for the nb keys from `keys` (rows of d).
template <typename T>
void ScoresPortable(const float* q, int64_t g, const T* keys, int64_t nb, int64_t d, float scale,
                    float* scores) {
  for (int64_t t = 0; t < nb; ++t) {
    const T* kt = keys + t * d;
    for (int64_t i = 0; i < g; ++i) {
      float acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += q[i * d + c] * Load(kt, c);
      scores[i * nb + t] = acc * scale;
    }
  }
}

// acc[g][d] += sum_t p[g * nb + t] * value_t.
template <typename T>
void AccumulatePortable(float* acc, int64_t g, const float* p, const T* values, int64_t nb,
                        int64_t d) {
  for (int64_t t = 0; t < nb; ++t) {
    const T* vt = values + t * d;
    for (int64_t i = 0; i < g; ++i) {
      const float pi = p[i * nb + t];
      for (int64_t c = 0; c < d; ++c) acc[i * d + c] += pi * Load(vt, c);
    }
  }
}

// Scores with the query row in NC registers (d = 16 * NC), four keys per pass.
template <typename T, int NC>
ICAE_AVX512 void ScoresRegs(const float* q, int64_t g, const T* keys, int64_t nb, float scale,
                            float* scores) {
  constexpr int64_t d = 16 * NC;
  for (int64_t i = 0; i < g; ++i) {
    __m512 qv[NC];
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) qv[c] = _mm512_loadu_ps(q + i * d + 16 * c);
    int64_t t = 0;
    for (; t + 4 <= nb; t += 4) {
      __m512 s[4];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) {
        s[u] = _mm512_mul_ps(qv[0], Load16(keys + (t + u) * d, 0xffff));
#pragma GCC unroll 16
        for (int c = 1; c < NC; ++c) {
          s[u] = _mm512_fmadd_ps(qv[c], Load16(keys + (t + u) * d + 16 * c, 0xffff), s[u]);
        }
      }
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) scores[i * nb + t + u] = Sum16(s[u]) * scale;
    }
    for (; t < nb; ++t) {
      __m512 s = _mm512_mul_ps(qv[0], Load16(keys + t * d, 0xffff));
#pragma GCC unroll 16
      for (int c = 1; c < NC; ++c) s = _mm512_fmadd_ps(qv[c], Load16(keys + t * d + 16 * c, 0xffff), s);
      scores[i * nb + t] = Sum16(s) * scale;
    }
  }
}

// Any d.
template <typename T>
ICAE_AVX512 void ScoresColumns(const float* q, int64_t g, const T* keys, int64_t nb, int64_t d,
                               float scale, float* scores) {
  for (int64_t t = 0; t < nb; ++t) {
    const T* kt = keys + t * d;
    for (int64_t i = 0; i < g; ++i) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t c = 0; c < d; c += 16) {
        const __mmask16 mask =
            d - c >= 16 ? 0xffff : static_cast<__mmask16>((1u << (d - c)) - 1);
        acc = _mm512_fmadd_ps(LoadF32(q + i * d + c, mask), Load16(kt + c, mask), acc);
      }
      scores[i * nb + t] = Sum16(acc) * scale;
    }
  }
}

template <typename T>
void ScoresAvx512(const float* q, int64_t g, const T* keys, int64_t nb, int64_t d, float scale,
                  float* scores) {
  switch (d) {
    case 64:
      return ScoresRegs<T, 4>(q, g, keys, nb, scale, scores);
    case 128:
      return ScoresRegs<T, 8>(q, g, keys, nb, scale, scores);
    case 256:
      return ScoresRegs<T, 16>(q, g, keys, nb, scale, scores);
    default:
      return ScoresColumns(q, g, keys, nb, d, scale, scores);
  }
}

// acc[g][d] += sum_t p[g * nb + t] * value_t with one query's accumulator row in NC registers
// (d = 16 * NC): each value row is read once per query, not once per 16 columns.
template <typename T, int NC>
ICAE_AVX512 void AccumulateRegs(float* acc, int64_t g, const float* p, const T* values,
                                int64_t nb) {
  constexpr int64_t d = 16 * NC;
  for (int64_t i = 0; i < g; ++i) {
    float* ai = acc + i * d;
    const float* pi = p + i * nb;
    __m512 a[NC];
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) a[c] = _mm512_loadu_ps(ai + 16 * c);
    for (int64_t t = 0; t < nb; ++t) {
      const __m512 pt = _mm512_set1_ps(pi[t]);
      const T* vt = values + t * d;
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) a[c] = _mm512_fmadd_ps(pt, Load16(vt + 16 * c, 0xffff), a[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(ai + 16 * c, a[c]);
  }
}

// Any d: 16 columns at a time over every key.
template <typename T>
ICAE_AVX512 void AccumulateColumns(float* acc, int64_t g, const float* p, const T* values,
                                   int64_t nb, int64_t d) {
  for (int64_t i = 0; i < g; ++i) {
    float* ai = acc + i * d;
    const float* pi = p + i * nb;
    for (int64_t c = 0; c < d; c += 16) {
      const __mmask16 mask = d - c >= 16 ? 0xffff : static_cast<__mmask16>((1u << (d - c)) - 1);
      __m512 a = LoadF32(ai + c, mask);
      for (int64_t t = 0; t < nb; ++t) {
        a = _mm512_fmadd_ps(_mm512_set1_ps(pi[t]), Load16(values + t * d + c, mask), a);
      }
      _mm512_mask_storeu_ps(ai + c, mask, a);
    }
  }
}

template <typename T>
void AccumulateAvx512(float* acc, int64_t g, const float* p, const T* values, int64_t nb,
                      int64_t d) {
  switch (d) {
    case 64:
      return AccumulateRegs<T, 4>(acc, g, p, values, nb);
    case 128:
      return AccumulateRegs<T, 8>(acc, g, p, values, nb);
    case 256:
      return AccumulateRegs<T, 16>(acc, g, p, values, nb);
    default:
      return AccumulateColumns(acc, g, p, values, nb, d);
  }
}

template <typename T>
void DecodeAttention(const DecodeAttentionArgs& a, const T* q, const T* const* keys,
                     const T* const* values, T* out) {
  const bool avx = ActiveIsa() != Isa::kPortable;
  const int64_t g = a.heads / a.kv_heads, d = a.d;
  at::parallel_for(0, a.batch * a.kv_heads, 1, [&](int64_t w0, int64_t w1) {
    // Per-thread scratch, grown once and reused by every later step.
    thread_local std::vector<float> scratch;
    const size_t need = static_cast<size_t>(2 * g * d + g * kKeyBlock + 2 * g);
    if (scratch.size() < need) scratch.resize(need);
    float* qf = scratch.data();
    float* acc = qf + g * d;
    float* scores = acc + g * d;
    float* running_max = scores + g * kKeyBlock;
    float* running_sum = running_max + g;
    for (int64_t work = w0; work < w1; ++work) {
      const int64_t b = work / a.kv_heads, kvh = work % a.kv_heads;
      const T* qb = q + (b * a.heads + kvh * g) * d;
      for (int64_t i = 0; i < g * d; ++i) qf[i] = Load(qb, i);
      std::fill(acc, acc + g * d, 0.0f);
      std::fill(running_max, running_max + g, -std::numeric_limits<float>::infinity());
      std::fill(running_sum, running_sum + g, 0.0f);
      const T* kbase = keys[b] + kvh * a.capacity[b] * d;
      const T* vbase = values[b] + kvh * a.capacity[b] * d;
      for (int64_t t0 = a.begin[b]; t0 < a.end[b]; t0 += kKeyBlock) {
        const int64_t nb = std::min(kKeyBlock, a.end[b] - t0);
        if (avx) {
          ScoresAvx512(qf, g, kbase + t0 * d, nb, d, a.scale, scores);
        } else {
          ScoresPortable(qf, g, kbase + t0 * d, nb, d, a.scale, scores);
        }
        // Online softmax: rescale what was accumulated to the new running maximum.
        for (int64_t i = 0; i < g; ++i) {
          float* s = scores + i * nb;
          const float block_max = *std::max_element(s, s + nb);
          const float new_max = std::max(running_max[i], block_max);
          const float correction = std::exp(running_max[i] - new_max);
          float sum = 0;
          for (int64_t t = 0; t < nb; ++t) {
            s[t] = std::exp(s[t] - new_max);
            sum += s[t];
          }
          running_sum[i] = running_sum[i] * correction + sum;
          running_max[i] = new_max;
          if (correction != 1.0f) {
            for (int64_t c = 0; c < d; ++c) acc[i * d + c] *= correction;
          }
        }
        if (avx) {
          AccumulateAvx512(acc, g, scores, vbase + t0 * d, nb, d);
        } else {
          AccumulatePortable(acc, g, scores, vbase + t0 * d, nb, d);
        }
      }
      T* ob = out + (b * a.heads + kvh * g) * d;
      for (int64_t i = 0; i < g; ++i) {
        const float inv = 1.0f / running_sum[i];
        for (int64_t c = 0; c < d; ++c) Store(ob, i * d + c, acc[i * d + c] * inv);
      }
    }
  });
}

}  // namespace

void SmallBatchLinearF32(const float* x, int64_t rows, int64_t k, const float* w, int64_t n,
                         float* y) {
  SmallBatchLinear(x, rows, k, w, n, y);
}

void SmallBatchLinearBf16(const bf16* x, int64_t rows, int64_t k, const bf16* w, int64_t n,
                          bf16* y) {
  SmallBatchLinear(x, rows, k, w, n, y);
}

void DecodeAttentionF32(const DecodeAttentionArgs& args, const float* q, const float* const* keys,
                        const float* const* values, float* out) {
  DecodeAttention(args, q, keys, values, out);
}

void DecodeAttentionBf16(const DecodeAttentionArgs& args, const bf16* q, const bf16* const* keys,
                         const bf16* const* values, bf16* out) {
  DecodeAttention(args, q, keys, values, out);
}

}  // namespace icae::kernels
