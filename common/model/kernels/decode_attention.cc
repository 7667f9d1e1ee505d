// Decode attention over a ragged batch (cpu_kernels.h): DecodeAttentionF32 / DecodeAttentionBf16.
// A decode row (and a short run) scores its keys with dot products per key; a longer run of a
// prefill chunk's rows takes the tile operations of attention_tile.h (RunTiled).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/model/kernels/attention_tile.h"
#include "common/model/kernels/cpu_kernels.h"
#include "common/model/kernels/simd.h"

namespace icae::kernels {
namespace {

using internal::Exp16;
using internal::FirstLanes;
using internal::Load;
using internal::Load16;
using internal::LoadF32;
using internal::Store;
using internal::Sum16;

constexpr int64_t kKeyBlock = 128;

// scores[g * ld + t] = scale * q_g . key_t for the nb keys from `keys` (rows of d).
template <typename T>
void ScoresPortable(const float* q, int64_t g, const T* keys, int64_t nb, int64_t d, float scale,
                    float* scores, int64_t ld) {
  for (int64_t t = 0; t < nb; ++t) {
    const T* kt = keys + t * d;
    for (int64_t i = 0; i < g; ++i) {
      float acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += q[i * d + c] * Load(kt, c);
      scores[i * ld + t] = acc * scale;
    }
  }
}

// acc[g][d] += sum_t p[g * ld + t] * value_t.
template <typename T>
void AccumulatePortable(float* acc, int64_t g, const float* p, int64_t ld, const T* values,
                        int64_t nb, int64_t d) {
  for (int64_t t = 0; t < nb; ++t) {
    const T* vt = values + t * d;
    for (int64_t i = 0; i < g; ++i) {
      const float pi = p[i * ld + t];
      for (int64_t c = 0; c < d; ++c) acc[i * d + c] += pi * Load(vt, c);
    }
  }
}

// Keys ahead of the one being scored whose cache lines are prefetched (a few KB).
constexpr int64_t kPrefetchKeys = 32;

// Scores with the query row in NC registers (d = 16 * NC), four keys per pass. The first query
// row's pass prefetches the keys kPrefetchKeys ahead and the values of the keys it scores (read
// by the accumulation right after), so that more than one line per stream is in flight.
template <typename T, int NC>
ICAE_AVX512 void ScoresRegs(const float* q, int64_t g, const T* keys, const T* values,
                            int64_t nb, float scale, float* scores, int64_t ld) {
  constexpr int64_t d = 16 * NC;
  constexpr int64_t kBytes = 4 * d * static_cast<int64_t>(sizeof(T));  // Four keys.
  for (int64_t i = 0; i < g; ++i) {
    __m512 qv[NC];
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) qv[c] = _mm512_loadu_ps(q + i * d + 16 * c);
    int64_t t = 0;
    for (; t + 4 <= nb; t += 4) {
      if (i == 0) {
        const char* vp = reinterpret_cast<const char*>(values + t * d);
        for (int64_t off = 0; off < kBytes; off += 64) _mm_prefetch(vp + off, _MM_HINT_T0);
        if (t + kPrefetchKeys + 4 <= nb) {
          const char* kp = reinterpret_cast<const char*>(keys + (t + kPrefetchKeys) * d);
          for (int64_t off = 0; off < kBytes; off += 64) _mm_prefetch(kp + off, _MM_HINT_T0);
        }
      }
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
      for (int u = 0; u < 4; ++u) scores[i * ld + t + u] = Sum16(s[u]) * scale;
    }
    for (; t < nb; ++t) {
      __m512 s = _mm512_mul_ps(qv[0], Load16(keys + t * d, 0xffff));
#pragma GCC unroll 16
      for (int c = 1; c < NC; ++c)
        s = _mm512_fmadd_ps(qv[c], Load16(keys + t * d + 16 * c, 0xffff), s);
      scores[i * ld + t] = Sum16(s) * scale;
    }
  }
}

// Any d.
template <typename T>
ICAE_AVX512 void ScoresColumns(const float* q, int64_t g, const T* keys, int64_t nb, int64_t d,
                               float scale, float* scores, int64_t ld) {
  for (int64_t t = 0; t < nb; ++t) {
    const T* kt = keys + t * d;
    for (int64_t i = 0; i < g; ++i) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t c = 0; c < d; c += 16) {
        const __mmask16 mask = d - c >= 16 ? 0xffff : static_cast<__mmask16>((1u << (d - c)) - 1);
        acc = _mm512_fmadd_ps(LoadF32(q + i * d + c, mask), Load16(kt + c, mask), acc);
      }
      scores[i * ld + t] = Sum16(acc) * scale;
    }
  }
}

template <typename T>
void ScoresAvx512(const float* q, int64_t g, const T* keys, const T* values, int64_t nb,
                  int64_t d, float scale, float* scores, int64_t ld) {
  switch (d) {
    case 64:
      return ScoresRegs<T, 4>(q, g, keys, values, nb, scale, scores, ld);
    case 128:
      return ScoresRegs<T, 8>(q, g, keys, values, nb, scale, scores, ld);
    case 256:
      return ScoresRegs<T, 16>(q, g, keys, values, nb, scale, scores, ld);
    default:
      return ScoresColumns(q, g, keys, nb, d, scale, scores, ld);
  }
}

// acc[g][d] += sum_t p[g * ld + t] * value_t with one query's accumulator row in NC registers
// (d = 16 * NC): each value row is read once per query, not once per 16 columns.
template <typename T, int NC>
ICAE_AVX512 void AccumulateRegs(float* acc, int64_t g, const float* p, int64_t ld,
                                const T* values, int64_t nb) {
  constexpr int64_t d = 16 * NC;
  for (int64_t i = 0; i < g; ++i) {
    float* ai = acc + i * d;
    const float* pi = p + i * ld;
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
ICAE_AVX512 void AccumulateColumns(float* acc, int64_t g, const float* p, int64_t ld,
                                   const T* values, int64_t nb, int64_t d) {
  for (int64_t i = 0; i < g; ++i) {
    float* ai = acc + i * d;
    const float* pi = p + i * ld;
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
void AccumulateAvx512(float* acc, int64_t g, const float* p, int64_t ld, const T* values,
                      int64_t nb, int64_t d) {
  switch (d) {
    case 64:
      return AccumulateRegs<T, 4>(acc, g, p, ld, values, nb);
    case 128:
      return AccumulateRegs<T, 8>(acc, g, p, ld, values, nb);
    case 256:
      return AccumulateRegs<T, 16>(acc, g, p, ld, values, nb);
    default:
      return AccumulateColumns(acc, g, p, ld, values, nb, d);
  }
}

// The largest of s[0, nb).
ICAE_AVX512 float MaxAvx512(const float* s, int64_t nb) {
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t t = 0; t < nb; t += 16) {
    m = _mm512_mask_max_ps(m, FirstLanes(nb - t), m, _mm512_loadu_ps(s + t));
  }
  return _mm512_reduce_max_ps(m);
}

// s[t] = exp(s[t] - max) for t < nb (Exp16, as the tiles compute it); returns their sum.
ICAE_AVX512 float ExpSumAvx512(float* s, int64_t nb, float max) {
  const __m512 mv = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t = 0; t < nb; t += 16) {
    const __mmask16 k = FirstLanes(nb - t);
    const __m512 e = _mm512_maskz_mov_ps(k, Exp16(_mm512_sub_ps(_mm512_loadu_ps(s + t), mv)));
    _mm512_mask_storeu_ps(s + t, k, e);
    sum = _mm512_add_ps(sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

// Where a sequence's keys and values of one part (its shared prefix, or its own cache) are.
template <typename T>
struct Part {
  const T* keys = nullptr;
  const T* values = nullptr;
  int64_t capacity = 0;             // Contiguous storage: [kv_heads, capacity, d].
  const int32_t* blocks = nullptr;  // Block storage: the pool's [kv_heads, *, block_tokens, d].
};

// Points *k, *v at index `index` of `part` for kv head `kvh`; returns how many of the next `want`
// indices follow contiguously from there (all of them, or up to the end of its block or of the
// run of consecutive block ids it starts).
template <typename T>
int64_t Locate(const DecodeAttentionArgs& a, const Part<T>& part, int64_t kvh, int64_t index,
               int64_t want, const T** k, const T** v) {
  if (part.blocks == nullptr) {
    const int64_t at = (kvh * part.capacity + index) * a.d;
    *k = part.keys + at;
    *v = part.values + at;
    return want;
  }
  const int64_t bt = a.block_tokens, offset = index % bt, first = index / bt;
  const int64_t at = ((kvh * a.pool_blocks + part.blocks[first]) * bt + offset) * a.d;
  *k = part.keys + at;
  *v = part.values + at;
  int64_t len = bt - offset;
  for (int64_t j = first + 1; len < want && part.blocks[j] == part.blocks[j - 1] + 1; ++j) {
    len += bt;
  }
  return std::min(want, len);
}

// Runs (two rows or more) of at least this many query rows (rows x query heads per kv head)
// take RunTiled; a decode row keeps the per-key path whatever its group size.
constexpr int64_t kTiledRunRows = 8;

// A run of m rows over one cache (a prefill chunk's queries) for kv head kvh: its m * g query
// rows scored together, 64 keys at a time, as tiles of outer products (attention_tile.h): each
// key block is gathered (through Locate: contiguous or pool blocks, prefix then own cache),
// transposed and widened to float32 once for every row of the run, and each row takes the
// part of the block inside its own [begin, end).
template <typename T>
void RunTiled(const DecodeAttentionArgs& a, int64_t b, int64_t kvh, int64_t m, const T* q,
              const Part<T>& pre, const Part<T>& own, int64_t split, T* out, bool avx) {
  using internal::kKeyBlock;
  const int64_t g = a.heads / a.kv_heads, d = a.d, rows = m * g;
  thread_local std::vector<float> qs, o, s, kt, vb, run_max, run_sum, corr;
  qs.resize(rows * d);
  o.assign(rows * d, 0.0f);
  s.resize(rows * kKeyBlock);
  kt.resize(d * kKeyBlock);
  vb.resize(kKeyBlock * d);
  run_max.assign(rows, internal::kNegInf);
  run_sum.assign(rows, 0.0f);
  corr.resize(rows);
  int64_t lo = a.begin[b], hi = a.end[b];
  for (int64_t j = 0; j < m; ++j) {
    const T* qj = q + ((b + j) * a.heads + kvh * g) * d;
    for (int64_t c = 0; c < g * d; ++c) qs[j * g * d + c] = Load(qj, c) * a.scale;
    lo = std::min(lo, a.begin[b + j]);
    hi = std::max(hi, a.end[b + j]);
  }
  for (int64_t t0 = lo; t0 < hi;) {
    const bool in_prefix = t0 < split;
    const int64_t block = std::min(kKeyBlock, (in_prefix ? std::min(split, hi) : hi) - t0);
    const Part<T>& part = in_prefix ? pre : own;
    const int64_t index = in_prefix ? t0 : t0 - split;
    const T* key_rows[kKeyBlock];
    for (int64_t done = 0; done < block;) {
      const T *kp, *vp;
      const int64_t len = Locate(a, part, kvh, index + done, block - done, &kp, &vp);
      for (int64_t t = 0; t < len; ++t) {
        key_rows[done + t] = kp + t * d;
        for (int64_t c = 0; c < d; ++c) vb[(done + t) * d + c] = Load(vp + t * d, c);
      }
      done += len;
    }
    internal::TransposeKeys(avx, key_rows, block, d, kt.data(), kKeyBlock);
    internal::ScoresTile(avx, qs.data(), rows, d, kt.data(), kKeyBlock, s.data());
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = b + r / g;
      const uint64_t bits = internal::BitRange(std::max(a.begin[row], t0) - t0,
                                               std::min(a.end[row], t0 + block) - 1 - t0);
      corr[r] = internal::SoftmaxRowStep(avx, s.data() + r * kKeyBlock, bits, &run_max[r],
                                         &run_sum[r]);
    }
    internal::AccumulateTile(avx, o.data(), rows, d, s.data(), vb.data(), block, corr.data());
    t0 += block;
  }
  for (int64_t j = 0; j < m; ++j) {
    T* oj = out + ((b + j) * a.heads + kvh * g) * d;
    for (int64_t i = 0; i < g; ++i) {
      const float inv = 1.0f / run_sum[j * g + i];
      for (int64_t c = 0; c < d; ++c) Store(oj, i * d + c, o[(j * g + i) * d + c] * inv);
    }
  }
}

template <typename T>
void DecodeAttention(const DecodeAttentionArgs& a, const T* q, const T* const* keys,
                     const T* const* values, T* out, const T* const* prefix_keys,
                     const T* const* prefix_values) {
  const bool avx = ActiveIsa() != Isa::kPortable;
  const int64_t g = a.heads / a.kv_heads, d = a.d;
  // Work items: (the first row of a run, kv head); without runs every row is one. Their costs
  // differ (a chunk's run scans its whole context for several rows, a decode row its own depth),
  // so they are dealt to the threads by cost, largest first, each to the least loaded thread.
  struct Work {
    int64_t b, kvh, cost;
  };
  std::vector<Work> items;
  int64_t longest = 1;
  for (int64_t b = 0; b < a.batch; ++b) {
    if (a.run != nullptr && a.run[b] == 0) continue;
    const int64_t m = a.run != nullptr ? a.run[b] : 1;
    longest = std::max(longest, m);
    int64_t keys_read = 0;
    for (int64_t j = 0; j < m; ++j) keys_read += a.end[b + j] - a.begin[b + j];
    for (int64_t kvh = 0; kvh < a.kv_heads; ++kvh) items.push_back({b, kvh, keys_read + 16});
  }
  const int64_t threads = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), static_cast<int64_t>(items.size())));
  std::stable_sort(items.begin(), items.end(),
                   [](const Work& x, const Work& y) { return x.cost > y.cost; });
  std::vector<std::vector<Work>> dealt(threads);
  std::vector<int64_t> load(threads, 0);
  for (const Work& w : items) {
    const int64_t t = std::min_element(load.begin(), load.end()) - load.begin();
    dealt[t].push_back(w);
    load[t] += w.cost;
  }
  at::parallel_for(0, threads, 1, [&](int64_t t0_, int64_t t1_) {
    // Per-thread scratch, grown once and reused by every later step: per row of a run its
    // queries, accumulators, running maxima and sums; one block of scores.
    thread_local std::vector<float> scratch;
    const int64_t per_row = 2 * g * d + 2 * g;
    const size_t need = static_cast<size_t>(longest * per_row + g * kKeyBlock);
    if (scratch.size() < need) scratch.resize(need);
    float* scores = scratch.data() + longest * per_row;
    for (int64_t t = t0_; t < t1_; ++t) {
      for (const Work& work : dealt[t]) {
        const int64_t b = work.b, kvh = work.kvh;
        const int64_t m = a.run != nullptr ? a.run[b] : 1;
        // The keys come from up to two parts: the shared prefix [0, split), then the own cache.
        const int64_t split = a.prefix_length != nullptr ? a.prefix_length[b] : 0;
        const Part<T> own{keys[b], values[b], a.capacity[b],
                          a.blocks != nullptr ? a.blocks[b] : nullptr};
        const Part<T> pre =
            split > 0 ? Part<T>{prefix_keys[b], prefix_values[b], a.prefix_capacity[b],
                                a.prefix_blocks != nullptr ? a.prefix_blocks[b] : nullptr}
                      : Part<T>{};
        if (m > 1 && m * g >= kTiledRunRows) {
          RunTiled(a, b, kvh, m, q, pre, own, split, out, avx);
          continue;
        }
        int64_t lo = a.begin[b], hi = a.end[b];
        for (int64_t j = 0; j < m; ++j) {
          float* qf = scratch.data() + j * per_row;
          float* acc = qf + g * d;
          float* running_max = acc + g * d;
          float* running_sum = running_max + g;
          const T* qb = q + ((b + j) * a.heads + kvh * g) * d;
          for (int64_t i = 0; i < g * d; ++i) qf[i] = Load(qb, i);
          std::fill(acc, acc + g * d, 0.0f);
          std::fill(running_max, running_max + g, -std::numeric_limits<float>::infinity());
          std::fill(running_sum, running_sum + g, 0.0f);
          lo = std::min(lo, a.begin[b + j]);
          hi = std::max(hi, a.end[b + j]);
        }
        for (int64_t t0 = lo; t0 < hi;) {
          const bool in_prefix = t0 < split;
          const int64_t part_end = in_prefix ? std::min(split, hi) : hi;
          const int64_t block = std::min(kKeyBlock, part_end - t0);
          // Each row of the run takes the part of the block in its range; the block stays in cache
          // from one row to the next.
          for (int64_t j = 0; j < m; ++j) {
            const int64_t first = std::max(t0, a.begin[b + j]);
            const int64_t nb = std::min(t0 + block, a.end[b + j]) - first;
            if (nb <= 0) continue;
            float* qf = scratch.data() + j * per_row;
            float* acc = qf + g * d;
            float* running_max = acc + g * d;
            float* running_sum = running_max + g;
            const Part<T>& part = in_prefix ? pre : own;
            const int64_t index = in_prefix ? first : first - split;  // In the part's storage.
            // The block's keys lie in one piece of contiguous storage, or in several blocks.
            for (int64_t done = 0; done < nb;) {
              const T *kp, *vp;
              const int64_t len = Locate(a, part, kvh, index + done, nb - done, &kp, &vp);
              if (avx) {
                ScoresAvx512(qf, g, kp, vp, len, d, a.scale, scores + done, nb);
              } else {
                ScoresPortable(qf, g, kp, len, d, a.scale, scores + done, nb);
              }
              done += len;
            }
            // Online softmax: rescale what was accumulated to the new running maximum.
            for (int64_t i = 0; i < g; ++i) {
              float* s = scores + i * nb;
              const float block_max = avx ? MaxAvx512(s, nb) : *std::max_element(s, s + nb);
              const float new_max = std::max(running_max[i], block_max);
              const float correction = std::exp(running_max[i] - new_max);
              float sum = 0;
              if (avx) {
                sum = ExpSumAvx512(s, nb, new_max);
              } else {
                for (int64_t t = 0; t < nb; ++t) {
                  s[t] = std::exp(s[t] - new_max);
                  sum += s[t];
                }
              }
              running_sum[i] = running_sum[i] * correction + sum;
              running_max[i] = new_max;
              if (correction != 1.0f) {
                for (int64_t c = 0; c < d; ++c) acc[i * d + c] *= correction;
              }
            }
            for (int64_t done = 0; done < nb;) {
              const T *kp, *vp;
              const int64_t len = Locate(a, part, kvh, index + done, nb - done, &kp, &vp);
              if (avx) {
                AccumulateAvx512(acc, g, scores + done, nb, vp, len, d);
              } else {
                AccumulatePortable(acc, g, scores + done, nb, vp, len, d);
              }
              done += len;
            }
          }
          t0 += block;
        }
        for (int64_t j = 0; j < m; ++j) {
          const float* acc = scratch.data() + j * per_row + g * d;
          const float* running_sum = acc + g * d + g;
          T* ob = out + ((b + j) * a.heads + kvh * g) * d;
          for (int64_t i = 0; i < g; ++i) {
            const float inv = 1.0f / running_sum[i];
            for (int64_t c = 0; c < d; ++c) Store(ob, i * d + c, acc[i * d + c] * inv);
          }
        }
      }
    }
  });
}

}  // namespace

void DecodeAttentionF32(const DecodeAttentionArgs& args, const float* q, const float* const* keys,
                        const float* const* values, float* out, const float* const* prefix_keys,
                        const float* const* prefix_values) {
  DecodeAttention(args, q, keys, values, out, prefix_keys, prefix_values);
}

void DecodeAttentionBf16(const DecodeAttentionArgs& args, const bf16* q, const bf16* const* keys,
                         const bf16* const* values, bf16* out, const bf16* const* prefix_keys,
                         const bf16* const* prefix_values) {
  DecodeAttention(args, q, keys, values, out, prefix_keys, prefix_values);
}

}  // namespace icae::kernels
