// CPU kernels for the decode path, where LibTorch has no fast call (PLATFORM.md): small-batch
// products over [out, in] weights and fused decode attention over a KV cache. Plain pointers, no
// ATen types; threads come from LibTorch's intra-op pool. Each kernel has an AVX-512 version
// (AVX-512-BF16 for the bf16 products) chosen at run time from the CPU's features, and a portable
// one; tests check both against naive scalar references (tests/model/cpu_kernels_test.cc).
#ifndef ICAE_COMMON_MODEL_KERNELS_CPU_KERNELS_H_
#define ICAE_COMMON_MODEL_KERNELS_CPU_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace icae::kernels {

// A bfloat16 value as its raw bits (the upper half of a float32).
using bf16 = uint16_t;

float Bf16ToFloat(bf16 x);
// Round to nearest even, as LibTorch rounds; NaN stays NaN.
bf16 FloatToBf16(float x);

enum class Isa {
  kPortable,    // Plain C++ (whatever the compiler vectorises for the baseline target).
  kAvx512,      // AVX-512 F/BW/VL: float32 kernels, bf16 by widening to float32.
  kAvx512Bf16,  // ... and VDPBF16PS for bf16 dot products.
};
std::string IsaName(Isa isa);
// What this CPU supports.
Isa DetectIsa();
// What the kernels use: DetectIsa(), capped by SetIsaCap (tests run every level the CPU has).
Isa ActiveIsa();
void SetIsaCap(std::optional<Isa> cap);

// How many distinct threads ran the pieces of an at::parallel_for over `tasks` items (grain 1) in
// the kernels' own translation units, which must be compiled with OpenMP for it to be more than
// one (LibTorch's OpenMP backend is a pragma in its headers). For a test of the build.
int ParallelThreadsSeen(int64_t tasks);

// The widest batch the small-batch products are for; larger batches are GEMMs.
inline constexpr int64_t kMaxSmallBatch = 16;

// y[m, n] = sum_k x[m, k] * w[n, k] for m < rows (1 .. kMaxSmallBatch); all row-major and
// contiguous. Each weight row is read from memory once per call whatever `rows` is; the output
// columns are split across threads. bf16 accumulates in float32 and rounds once.
void SmallBatchLinearF32(const float* x, int64_t rows, int64_t k, const float* w, int64_t n,
                         float* y);
void SmallBatchLinearBf16(const bf16* x, int64_t rows, int64_t k, const bf16* w, int64_t n,
                          bf16* y);

// The decode step's element-wise work over `rows` rows (elementwise.cc). Float32 arithmetic; with
// bf16 storage every op's result is rounded as LibTorch's bf16 ops round theirs, so the results
// are those of the ATen expressions in ops.h up to the order of the RMSNorm sum (and exp's last
// bits in SiLU).
// x[r] += delta[r] when delta is not null (the residual add, in place), then
// out[r] = weight * T(x[r] / sqrt(mean(x[r]^2) + eps)); x, delta, out are [rows, n].
void AddRmsNormF32(float* x, const float* delta, int64_t rows, int64_t n, const float* weight,
                   float eps, float* out);
void AddRmsNormBf16(bf16* x, const bf16* delta, int64_t rows, int64_t n, const bf16* weight,
                    float eps, bf16* out);
// RoPE in place (HF's rotate_half form) on `heads` heads of d values that start at
// x + r * row_stride for each row r, with that row's cos and sin tables [rows, d]:
// v[i] = v[i] cos[i] - v[i + d/2] sin[i], v[i + d/2] = v[i + d/2] cos[i + d/2] + v[i] sin[i + d/2].
void RopeF32(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
             const float* cos, const float* sin);
void RopeBf16(bf16* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t d,
              const bf16* cos, const bf16* sin);
// out[r, i] = silu(gate_up[r, i]) * gate_up[r, inter + i]; gate_up is [rows, 2 * inter].
void SiluMulF32(const float* gate_up, int64_t rows, int64_t inter, float* out);
void SiluMulBf16(const bf16* gate_up, int64_t rows, int64_t inter, bf16* out);

// One decode step of grouped-query attention for a ragged batch, every sequence at once.
//   q[b]:      [heads, d] of sequence b (the batch is q + b * heads * d)
//   keys[b], values[b]: that sequence's cache of this layer, [kv_heads, capacity[b], d]
//   begin[b] .. end[b]: the key positions it attends to (end > begin)
//   out[b]:    [heads, d]
// Query head h reads kv head h / (heads / kv_heads) (HF's repeat_kv order). Softmax of
// q.k * scale, online over blocks of keys, accumulated in float32 whatever the storage dtype;
// parallel over (sequence, kv head).
struct DecodeAttentionArgs {
  int64_t batch = 0, heads = 0, kv_heads = 0, d = 0;
  float scale = 1.0f;
  const int64_t* capacity = nullptr;
  const int64_t* begin = nullptr;
  const int64_t* end = nullptr;
  // Shared prefixes (KVCache::prefix), or null when no sequence has one: sequence b reads
  // positions t < prefix_length[b] from prefix_keys[b] / prefix_values[b] ([kv_heads,
  // prefix_capacity[b], d], index t) and t >= prefix_length[b] from keys[b] / values[b] at
  // index t - prefix_length[b]. prefix_length[b] == 0: no prefix for b.
  const int64_t* prefix_length = nullptr;
  const int64_t* prefix_capacity = nullptr;
  // Runs of rows over one sequence (a prefill chunk's queries), or null when every row is its own:
  // run[b] > 0 starts a run of run[b] rows b.. that read the same cache (row b's keys, values,
  // capacity and prefix; each row its own begin and end, e.g. causal), run[b] == 0 for the rows
  // after its first. A run's key blocks are read from memory once for all of its rows (and, from
  // 8 query rows per kv head, scored as tiles, as PrefillAttention scores them).
  const int64_t* run = nullptr;
  // Block storage (KvBlockPool), or null when no cache is in blocks: blocks[b] != null means
  // keys[b] / values[b] are a pool's [kv_heads, pool_blocks, block_tokens, d] and own index i
  // lies in block blocks[b][i / block_tokens] at i % block_tokens (capacity[b] unused); the same
  // for prefix_blocks[b] and the prefix. Consecutive block ids are read as one stretch. The
  // softmax runs over the same key blocks whatever the storage, so the results are bit for bit
  // those of contiguous storage.
  const int32_t* const* blocks = nullptr;
  const int32_t* const* prefix_blocks = nullptr;
  int64_t block_tokens = 0;
  int64_t pool_blocks = 0;
};
void DecodeAttentionF32(const DecodeAttentionArgs& args, const float* q,
                        const float* const* keys, const float* const* values, float* out,
                        const float* const* prefix_keys = nullptr,
                        const float* const* prefix_values = nullptr);
void DecodeAttentionBf16(const DecodeAttentionArgs& args, const bf16* q, const bf16* const* keys,
                         const bf16* const* values, bf16* out,
                         const bf16* const* prefix_keys = nullptr,
                         const bf16* const* prefix_values = nullptr);

// Causal grouped-query attention of many query rows at once (prefill and compression), tiled as
// flash attention is: blocks of query rows against blocks of keys with an online softmax, so the
// [rows, keys] scores never exist whole and key blocks no query row can see are skipped.
//   q, out:      [batch, heads, rows, d]      keys, values: [batch, kv_heads, keys, d]
// Only the last dimension need be contiguous: strides are given in elements for (batch, head, row).
// Query row i of sequence b sits at key index positions[b * rows + i] (null: keys - rows + i) and
// sees key j when j <= that index, when the index - j < window (window > 0), and when
// key_valid[b * keys + j] != 0 or j is its own index (key_valid null: every key valid): the mask
// Transformer::Forward builds. Query head h reads kv head h / (heads / kv_heads). Scores, softmax
// and accumulation in float32 whatever the storage dtype; parallel over (sequence, head, block).
struct PrefillAttentionArgs {
  int64_t batch = 0, heads = 0, kv_heads = 0, rows = 0, keys = 0, d = 0;
  float scale = 1.0f;
  int64_t q_stride[3] = {}, k_stride[3] = {}, v_stride[3] = {}, out_stride[3] = {};
  const int64_t* positions = nullptr;
  int64_t window = 0;
  const uint8_t* key_valid = nullptr;
};
void PrefillAttentionF32(const PrefillAttentionArgs& args, const float* q, const float* keys,
                         const float* values, float* out);
void PrefillAttentionBf16(const PrefillAttentionArgs& args, const bf16* q, const bf16* keys,
                          const bf16* values, bf16* out);
// Bytes of key/value scratch the calling thread keeps between PrefillAttention calls: what its
// last call needed, or none when that was over 16 MiB.
size_t PrefillAttentionRetainedBytes();

}  // namespace icae::kernels

#endif  // ICAE_COMMON_MODEL_KERNELS_CPU_KERNELS_H_
