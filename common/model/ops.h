// The transformer's building blocks as free functions over tensors (also used by tests that check
// them against naive references). Shapes are in the comments; dtype is the input's.
#ifndef ICAE_COMMON_MODEL_OPS_H_
#define ICAE_COMMON_MODEL_OPS_H_

#include <ATen/ATen.h>

#include <optional>

#include "absl/types/span.h"

namespace icae {

// The project's own CPU kernels (kernels/cpu_kernels.h) are used where they apply unless turned
// off (benchmarks compare both paths in one run; tests check them against ATen).
bool CpuKernelsEnabled();
void SetCpuKernelsEnabled(bool enabled);
// True when `t` may go through them: kernels on, a CPU tensor that needs no gradient, float32 or
// bfloat16. CUDA tensors and training always take ATen.
bool CpuKernelApplies(const at::Tensor& t);

// y = x W^T for x [..., in], w [out, in], by at::linear (a GEMM): compression, prefill and
// training. A row's last bits may depend on its place in the batch (BLAS edge tiles).
at::Tensor Linear(const at::Tensor& x, const at::Tensor& w);
// The same for decode: up to kernels::kMaxSmallBatch rows on the CPU go through the small-batch
// kernel, which reads each weight row once whatever the batch (a one-row GEMM here reads weights
// at half the speed of a matrix-vector product) and gives each row the same bits in any batch;
// anything else through at::linear.
at::Tensor SmallBatchLinear(const at::Tensor& x, const at::Tensor& w);

// HF LlamaRMSNorm: float32 mean of squares, rsqrt(var + eps), cast back, times weight.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotate-half RoPE: x * cos + rotate_half(x) * sin, with cos/sin broadcastable to x
// ([..., seq, head_dim]).
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The decode step's fused forms (one CPU kernel call each where CpuKernelApplies, 2-D
// contiguous rows; the ATen expressions above otherwise, with the same roundings):
// x += delta in place (skipped when delta is undefined), then RmsNorm(x, weight, eps).
at::Tensor AddRmsNorm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& weight,
                      double eps);
// ApplyRope in place on the first `heads` heads of d columns of every row of x [rows, >= heads
// * d] (a decode step's q and k, side by side in its qkv rows), with cos and sin [rows, d].
void ApplyRopeInPlace(at::Tensor& x, int64_t heads, int64_t d, const at::Tensor& cos,
                      const at::Tensor& sin);
// silu(gate) * up for gate_up [..., 2 * inter] = [gate, up].
at::Tensor SiluMul(const at::Tensor& gate_up);

// down(silu(gate(x)) * up(x)) with gate and up fused in w_gate_up [2 * inter, hidden]; the
// products through SmallBatchLinear when `small_batch` (decode), else Linear; SiluMul between.
at::Tensor Mlp(const at::Tensor& x, const at::Tensor& w_gate_up, const at::Tensor& w_down,
               bool small_batch = false);

// Grouped-query attention.
//   q:       [batch, heads, seq, d]
//   k, v:    [batch, kv_heads, keys, d]
//   allowed: bool, broadcastable to [batch, seq, keys]
// Returns [batch, heads, seq, d]. Softmax in float32 as HF does.
at::Tensor Attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& allowed);

// Attend over keys and values held in consecutive parts (k[i], v[i]: [batch, kv_heads, n_i, d];
// `allowed` covers all sum(n_i) keys in order), e.g. a shared prefix cache and a sequence's own
// cache, without concatenating them: only the scores are joined. One part is exactly Attend.
at::Tensor AttendParts(const at::Tensor& q, absl::Span<const at::Tensor> k,
                       absl::Span<const at::Tensor> v, const at::Tensor& allowed);

// Causal grouped-query attention as a prefill or compression pass needs it:
//   q: [batch, heads, rows, d]
//   k, v: keys and values in consecutive parts, as AttendParts takes them (k[i], v[i]: [batch,
//         kv_heads, n_i, d]; e.g. a shared prefix's, then a cache's own): `keys` = sum(n_i)
//   query_index: [batch, rows] (long) the key index each query row sits at, or undefined for
//                keys - rows .. keys - 1 in order
//   key_valid:   [batch, keys] (bool) or undefined (every key valid)
// A query row sees key j when j <= its index, when its index - j < window (if set), and when j
// is valid or its own. Returns [batch, heads, rows, d] (a view of [batch, rows, heads, d]
// storage). Through the tiled CPU kernel where CpuKernelApplies (the parts joined; scores,
// softmax and accumulation in float32), else through AttendParts with the mask built from the
// same rule.
at::Tensor CausalAttend(const at::Tensor& q, absl::Span<const at::Tensor> k,
                        absl::Span<const at::Tensor> v, const at::Tensor& query_index,
                        const at::Tensor& key_valid, std::optional<int> window);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_OPS_H_
