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

#include "common/model/kernels/attention_tile.h"
#include "common/model/kernels/cpu_kernels.h"

namespace icae::kernels {
namespace {

using internal::AccumulateTile;
using internal::BitRange;
using internal::kKeyBlock;
using internal::kNegInf;
using internal::Load;
using internal::ScoresTile;
using internal::SoftmaxRowStep;
using internal::Store;
using internal::TransposeKeys;

constexpr int64_t kRowBlock = 64;

// The calling thread's transposed keys and widened values (see PrefillAttention); kept between
// calls up to kRetainedScratchBytes, so that every layer of a pass reuses them, and released
// after a call that needed more (a long context on a large model: 42 MB for 5120 positions of
// Mistral-7B), so that no thread holds its longest context's scratch for good.
constexpr size_t kRetainedScratchBytes = size_t{16} << 20;
thread_local std::vector<float> kt_store, v_store;

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
        float* vt = v_all + (kvh * a.keys + j0) * d;
        const T* rows[kKeyBlock];
        for (int64_t j = 0; j < nb; ++j) {
          rows[j] = kb + (j0 + j) * a.k_stride[2];
          const T* vj = vb + (j0 + j) * a.v_stride[2];
          for (int64_t c = 0; c < d; ++c) vt[j * d + c] = Load(vj, c);
        }
        TransposeKeys(avx, rows, nb, d, kt_all + kvh * d * ld + j0, ld);
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
          ScoresTile(avx, w.q.data(), nr, d, kt + j0, ld, w.s.data());
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t p = w.pos[r];
            const int64_t lo = a.window > 0 ? std::max(j0, p - a.window + 1) : j0;
            const uint64_t own = p >= j0 && p < j0 + nb ? uint64_t{1} << (p - j0) : 0;
            const uint64_t bits =
                BitRange(lo - j0, std::min(j0 + nb - 1, p) - j0) & (valid_bits | own);
            w.corr[r] = SoftmaxRowStep(avx, w.s.data() + r * kKeyBlock, bits, &w.m[r], &w.l[r]);
          }
          AccumulateTile(avx, w.o.data(), nr, d, w.s.data(), vt + j0 * d, nb, w.corr.data());
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
  if ((kt_store.capacity() + v_store.capacity()) * sizeof(float) > kRetainedScratchBytes) {
    std::vector<float>().swap(kt_store);
    std::vector<float>().swap(v_store);
  }
}

}  // namespace

size_t PrefillAttentionRetainedBytes() {
  return (kt_store.capacity() + v_store.capacity()) * sizeof(float);
}

void PrefillAttentionF32(const PrefillAttentionArgs& args, const float* q, const float* keys,
                         const float* values, float* out) {
  PrefillAttention(args, q, keys, values, out);
}

void PrefillAttentionBf16(const PrefillAttentionArgs& args, const bf16* q, const bf16* keys,
                          const bf16* values, bf16* out) {
  PrefillAttention(args, q, keys, values, out);
}

}  // namespace icae::kernels
