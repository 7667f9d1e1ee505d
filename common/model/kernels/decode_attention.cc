// Decode attention over a ragged batch (cpu_kernels.h): DecodeAttentionF32 / DecodeAttentionBf16.
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
using internal::Load16;
using internal::LoadF32;
using internal::Store;
using internal::Sum16;

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
                     const T* const* values, T* out, const T* const* prefix_keys,
                     const T* const* prefix_values) {
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
      // The keys come from up to two parts: the shared prefix [0, split), then the own cache.
      const int64_t split = a.prefix_length != nullptr ? a.prefix_length[b] : 0;
      const T* own_k = keys[b] + kvh * a.capacity[b] * d;
      const T* own_v = values[b] + kvh * a.capacity[b] * d;
      const T* pre_k = split > 0 ? prefix_keys[b] + kvh * a.prefix_capacity[b] * d : nullptr;
      const T* pre_v = split > 0 ? prefix_values[b] + kvh * a.prefix_capacity[b] * d : nullptr;
      for (int64_t t0 = a.begin[b]; t0 < a.end[b];) {
        const bool in_prefix = t0 < split;
        const int64_t part_end = in_prefix ? std::min(split, a.end[b]) : a.end[b];
        const int64_t nb = std::min(kKeyBlock, part_end - t0);
        const T* kbase = (in_prefix ? pre_k + t0 * d : own_k + (t0 - split) * d);
        const T* vbase = (in_prefix ? pre_v + t0 * d : own_v + (t0 - split) * d);
        if (avx) {
          ScoresAvx512(qf, g, kbase, nb, d, a.scale, scores);
        } else {
          ScoresPortable(qf, g, kbase, nb, d, a.scale, scores);
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
          AccumulateAvx512(acc, g, scores, vbase, nb, d);
        } else {
          AccumulatePortable(acc, g, scores, vbase, nb, d);
        }
        t0 += nb;
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
