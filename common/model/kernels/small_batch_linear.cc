// The small-batch products (cpu_kernels.h): SmallBatchLinearF32 / SmallBatchLinearBf16.
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "common/model/kernels/cpu_kernels.h"
#include "common/model/kernels/simd.h"

namespace icae::kernels {
namespace {

using internal::Load;
using internal::Load16;
using internal::Store;
using internal::Sum16;

// Output columns per parallel task: enough rows that a task reads a few hundred KB of weights.
int64_t ColumnGrain(int64_t k, int64_t elem) {
  return std::max<int64_t>(8, (256 * 1024) / std::max<int64_t>(1, k * elem));
}


// Portable version: plain loops, float32 accumulation.
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


// How many blocks of rows ahead the weight rows are prefetched: about the same number of bytes
// ahead for both dtypes (a bf16 block is half the bytes; 2 blocks read 20-26 GB/s over a 134M
// model's bf16 weights where 1 block read 19-21).
template <typename T>
constexpr int kPrefetchBlocks = sizeof(T) == 4 ? 1 : 2;

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
  const char* next = reinterpret_cast<const char*>(w + kPrefetchBlocks<T> * R * k);
  const bool prefetch = rows_left > (kPrefetchBlocks<T> + 1) * R;
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
  const char* next = reinterpret_cast<const char*>(w + kPrefetchBlocks<bf16> * R * k);
  const bool prefetch = rows_left > (kPrefetchBlocks<bf16> + 1) * R;
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

// A single input streams 8 weight rows at once (8 accumulators: memory-bound, as many streams in
// flight as possible). Several inputs take 4 weight rows per block, in groups of at most kGroup
// inputs: a group's 4 x kGroup accumulators, 4 weight vectors and one input vector stay in
// registers (29 of 32), and each 16 values of k cost 4 + g loads for 4 x g FMAs, so larger groups
// keep the FMA units busier (6 inputs: 2.4 FMAs per load; 4: 2.0; 1: 0.8).
constexpr int kGroup = 6;
constexpr int kSingleRows = 8, kBlockRows = 4;
constexpr int kMaxBlockRows = 8;

template <typename T, int... MG>
constexpr std::array<RowsFn, sizeof...(MG)> AvxTable(std::integer_sequence<int, MG...>) {
  return {RowsAvx512Erased<T, kBlockRows, MG + 1>...};
}
template <int... MG>
constexpr std::array<RowsFn, sizeof...(MG)> DpTable(std::integer_sequence<int, MG...>) {
  return {RowsBf16DpErased<kBlockRows, MG + 1>...};
}

// The kernel for a group of `mg` inputs (1..kGroup) of a product with `rows` inputs in all: a lone
// input streams kSingleRows weight rows, otherwise every group takes kBlockRows.
template <typename T>
RowsFn RowsKernel(int64_t rows, int mg, bool dp) {
  static constexpr auto kAvx = AvxTable<T>(std::make_integer_sequence<int, kGroup>());
  static constexpr auto kDp = DpTable(std::make_integer_sequence<int, kGroup>());
  if constexpr (std::is_same_v<T, bf16>) {
    if (dp) return rows == 1 ? RowsBf16DpErased<kSingleRows, 1> : kDp[mg - 1];
  }
  return rows == 1 ? RowsAvx512Erased<T, kSingleRows, 1> : kAvx[mg - 1];
}

// Columns [n0, n1) of y for every input row, a block of weight rows at a time; the inputs in as
// few groups of at most kGroup as can be, of sizes that differ by at most one (9 inputs: 5 + 4,
// not 6 + 3), so that no group is a thin tail. The block's weight rows stay in L1 between groups,
// so memory reads each weight once. Every output is the same sum in the same order whatever the
// grouping: a row's result does not depend on the other rows.
template <typename T>
void LinearAvx512(const T* x, int64_t rows, int64_t k, const T* w, int64_t n0, int64_t n1,
                  int64_t n, T* y, bool dp) {
  float out[kMaxBlockRows * 8];
  const int64_t block = rows == 1 ? kSingleRows : kBlockRows;
  const int64_t groups = (rows + kGroup - 1) / kGroup;
  for (int64_t j = n0; j < n1; j += block) {
    const int64_t valid = std::min<int64_t>(block, n1 - j);
    for (int64_t g = 0, m0 = 0; g < groups; ++g) {
      const int mg = static_cast<int>(rows / groups + (g < rows % groups ? 1 : 0));
      RowsKernel<T>(rows, mg, dp)(x + m0 * k, k, w + j * k, n1 - j, out);
      for (int m = 0; m < mg; ++m) {
        for (int64_t r = 0; r < valid; ++r) Store(y, (m0 + m) * n + j + r, out[r * 8 + m]);
      }
      m0 += mg;
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

}  // namespace

int ParallelThreadsSeen(int64_t tasks) {
  std::mutex mu;
  std::set<std::thread::id> seen;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    // Long enough that one thread cannot take every piece before another starts.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
  });
  return static_cast<int>(seen.size());
}

void SmallBatchLinearF32(const float* x, int64_t rows, int64_t k, const float* w, int64_t n,
                         float* y) {
  SmallBatchLinear(x, rows, k, w, n, y);
}

void SmallBatchLinearBf16(const bf16* x, int64_t rows, int64_t k, const bf16* w, int64_t n,
                          bf16* y) {
  SmallBatchLinear(x, rows, k, w, n, y);
}

}  // namespace icae::kernels
