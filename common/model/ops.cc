#include "common/model/ops.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "common/model/kernels/cpu_kernels.h"

namespace icae {
namespace {

std::atomic<bool> cpu_kernels_enabled{true};

}  // namespace

bool CpuKernelsEnabled() { return cpu_kernels_enabled.load(); }
void SetCpuKernelsEnabled(bool enabled) { cpu_kernels_enabled.store(enabled); }

bool CpuKernelApplies(const at::Tensor& t) {
  return CpuKernelsEnabled() && t.device().is_cpu() && !t.requires_grad() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w) { return at::linear(x, w); }

at::Tensor SmallBatchLinear(const at::Tensor& x, const at::Tensor& w) {
  const int64_t k = x.size(-1);
  const int64_t rows = k == 0 ? 0 : x.numel() / k;
  if (rows >= 1 && rows <= kernels::kMaxSmallBatch && CpuKernelApplies(x) && CpuKernelApplies(w) &&
      x.scalar_type() == w.scalar_type() && w.dim() == 2 && w.size(1) == k && w.is_contiguous()) {
    // Decode-sized batches: each weight row read once whatever the batch (cpu_kernels.h).
    const at::Tensor xc = x.contiguous();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = w.size(0);
    at::Tensor y = at::empty(shape, x.options());
    if (x.scalar_type() == at::kFloat) {
      kernels::SmallBatchLinearF32(xc.data_ptr<float>(), rows, k, w.data_ptr<float>(), w.size(0),
                                   y.data_ptr<float>());
    } else {
      kernels::SmallBatchLinearBf16(reinterpret_cast<const kernels::bf16*>(xc.data_ptr()), rows, k,
                                    reinterpret_cast<const kernels::bf16*>(w.data_ptr()),
                                    w.size(0), reinterpret_cast<kernels::bf16*>(y.data_ptr()));
    }
    return y;
  }
  return at::linear(x, w);
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(variance + eps)).to(x.scalar_type());
}

at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

namespace {

// Rows of a 2-D contiguous CPU tensor the element-wise kernels take.
bool RowKernelApplies(const at::Tensor& t) {
  return CpuKernelApplies(t) && t.dim() == 2 && t.is_contiguous();
}

bool SameKernelType(const at::Tensor& a, const at::Tensor& b) {
  return b.defined() && b.scalar_type() == a.scalar_type() && b.device() == a.device() &&
         b.is_contiguous();
}

template <typename T>
T* Data(const at::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr());
}

}  // namespace

at::Tensor AddRmsNorm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& weight,
                      double eps) {
  const bool with_delta = delta.defined();
  if (RowKernelApplies(x) && SameKernelType(x, weight) && weight.numel() == x.size(1) &&
      (!with_delta || (SameKernelType(x, delta) && delta.sizes() == x.sizes()))) {
    at::Tensor out = at::empty_like(x);
    const int64_t rows = x.size(0), n = x.size(1);
    if (x.scalar_type() == at::kFloat) {
      kernels::AddRmsNormF32(Data<float>(x), with_delta ? Data<const float>(delta) : nullptr,
                             rows, n, Data<const float>(weight), static_cast<float>(eps),
                             Data<float>(out));
    } else {
      using B = kernels::bf16;
      kernels::AddRmsNormBf16(Data<B>(x), with_delta ? Data<const B>(delta) : nullptr, rows, n,
                              Data<const B>(weight), static_cast<float>(eps), Data<B>(out));
    }
    return out;
  }
  if (with_delta) x.add_(delta);
  return RmsNorm(x, weight, eps);
}

void ApplyRopeInPlace(at::Tensor& x, int64_t heads, int64_t d, const at::Tensor& cos,
                      const at::Tensor& sin) {
  const int64_t rows = x.size(0);
  if (RowKernelApplies(x) && x.size(1) >= heads * d && SameKernelType(x, cos) &&
      SameKernelType(x, sin) && cos.numel() == rows * d && sin.numel() == rows * d) {
    if (x.scalar_type() == at::kFloat) {
      kernels::RopeF32(Data<float>(x), rows, x.size(1), heads, d, Data<const float>(cos),
                       Data<const float>(sin));
    } else {
      using B = kernels::bf16;
      kernels::RopeBf16(Data<B>(x), rows, x.size(1), heads, d, Data<const B>(cos),
                        Data<const B>(sin));
    }
    return;
  }
  at::Tensor view = x.narrow(-1, 0, heads * d).view({rows, heads, d});
  view.copy_(ApplyRope(view, cos.view({rows, 1, d}), sin.view({rows, 1, d})));
}

at::Tensor SiluMul(const at::Tensor& gate_up) {
  const int64_t inter = gate_up.size(-1) / 2;
  if (RowKernelApplies(gate_up)) {
    at::Tensor out = at::empty({gate_up.size(0), inter}, gate_up.options());
    if (gate_up.scalar_type() == at::kFloat) {
      kernels::SiluMulF32(Data<const float>(gate_up), gate_up.size(0), inter, Data<float>(out));
    } else {
      using B = kernels::bf16;
      kernels::SiluMulBf16(Data<const B>(gate_up), gate_up.size(0), inter, Data<B>(out));
    }
    return out;
  }
  return at::silu(gate_up.narrow(-1, 0, inter)) * gate_up.narrow(-1, inter, inter);
}

at::Tensor Mlp(const at::Tensor& x, const at::Tensor& w_gate_up, const at::Tensor& w_down,
               bool small_batch) {
  at::Tensor gate_up = small_batch ? SmallBatchLinear(x, w_gate_up) : Linear(x, w_gate_up);
  // SiluMul is the kernel for a 2-D contiguous CPU gate_up, else the ATen expression.
  at::Tensor act = SiluMul(gate_up);
  return small_batch ? SmallBatchLinear(act, w_down) : Linear(act, w_down);
}

at::Tensor Attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& allowed) {
  return AttendParts(q, {k}, {v}, allowed);
}

at::Tensor AttendParts(const at::Tensor& q, absl::Span<const at::Tensor> k,
                       absl::Span<const at::Tensor> v, const at::Tensor& allowed) {
  const int64_t batch = q.size(0), heads = q.size(1), seq = q.size(2), d = q.size(3);
  const int64_t kv_heads = k[0].size(1);
  const int64_t group = heads / kv_heads;
  // Query heads kv*group .. kv*group + group - 1 share kv head `kv` (HF's repeat_kv order).
  at::Tensor qg = q.reshape({batch, kv_heads, group * seq, d});
  std::vector<at::Tensor> part_scores;
  std::vector<int64_t> sizes;
  int64_t keys = 0;
  for (const at::Tensor& part : k) {
    part_scores.push_back(at::matmul(qg, part.transpose(-1, -2)) /
                          std::sqrt(static_cast<double>(d)));
    sizes.push_back(part.size(2));
    keys += part.size(2);
  }
  at::Tensor scores = part_scores.size() == 1 ? part_scores[0] : at::cat(part_scores, -1);
  scores = scores.view({batch, kv_heads, group, seq, keys});
  if (allowed.defined()) {
    at::Tensor blocked = allowed.logical_not();
    while (blocked.dim() < 3) blocked = blocked.unsqueeze(0);
    blocked = blocked.unsqueeze(1).unsqueeze(1);  // [batch|1, 1, 1, seq, keys]
    scores = scores.masked_fill(blocked, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  probs = probs.view({batch, kv_heads, group * seq, keys});
  at::Tensor out;
  int64_t first = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    at::Tensor p = v.size() == 1 ? probs : probs.narrow(-1, first, sizes[i]);
    at::Tensor o = at::matmul(p, v[i]);
    out = out.defined() ? out + o : o;
    first += sizes[i];
  }
  return out.view({batch, heads, seq, d});
}

at::Tensor CausalAttend(const at::Tensor& q, absl::Span<const at::Tensor> k,
                        absl::Span<const at::Tensor> v, const at::Tensor& query_index,
                        const at::Tensor& key_valid, std::optional<int> window) {
  const int64_t batch = q.size(0), heads = q.size(1), rows = q.size(2), d = q.size(3);
  const int64_t kv_heads = k[0].size(1);
  int64_t keys = 0;
  for (const at::Tensor& part : k) keys += part.size(2);
  bool kernel = CpuKernelApplies(q) && d > 0 && rows > 0 && keys > 0 && heads % kv_heads == 0;
  for (size_t i = 0; i < k.size(); ++i) {
    kernel = kernel && CpuKernelApplies(k[i]) && CpuKernelApplies(v[i]) &&
             k[i].scalar_type() == q.scalar_type() && v[i].scalar_type() == q.scalar_type();
  }
  if (!kernel) {
    const auto opts = at::TensorOptions().dtype(at::kLong).device(q.device());
    at::Tensor qi = query_index.defined() ? query_index.to(q.device(), at::kLong).unsqueeze(-1)
                                          : at::arange(keys - rows, keys, opts).view({1, rows, 1});
    at::Tensor kj = at::arange(0, keys, opts).view({1, 1, keys});
    at::Tensor allowed = kj <= qi;  // [batch|1, rows, keys]
    if (window) allowed = allowed & ((qi - kj) < *window);
    if (key_valid.defined()) {
      allowed = allowed & (key_valid.to(q.device()).unsqueeze(1) | (kj == qi));
    }
    return AttendParts(q, k, v, allowed);
  }
  // The kernel reads one run of keys: parts are joined (a shared prefix to a cache's own).
  auto joined = [](absl::Span<const at::Tensor> parts) {
    return parts.size() == 1 ? parts[0]
                             : at::cat(at::ArrayRef<at::Tensor>(parts.data(), parts.size()), 2);
  };
  const at::Tensor k_all = joined(k), v_all = joined(v);
  // The kernel reads rows of d contiguous values through strides; anything else is copied.
  auto rows_contiguous = [](const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const at::Tensor qc = rows_contiguous(q), kc = rows_contiguous(k_all),
                   vc = rows_contiguous(v_all);
  at::Tensor out = at::empty({batch, rows, heads, d}, q.options()).transpose(1, 2);
  at::Tensor index, valid;
  kernels::PrefillAttentionArgs args;
  args.batch = batch;
  args.heads = heads;
  args.kv_heads = kv_heads;
  args.rows = rows;
  args.keys = keys;
  args.d = d;
  args.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  for (int i = 0; i < 3; ++i) {
    args.q_stride[i] = qc.stride(i);
    args.k_stride[i] = kc.stride(i);
    args.v_stride[i] = vc.stride(i);
    args.out_stride[i] = out.stride(i);
  }
  if (query_index.defined()) {
    index = query_index.to(at::kCPU, at::kLong).contiguous();
    TORCH_CHECK(index.numel() == batch * rows, "CausalAttend: query_index is not [batch, rows]");
    args.positions = index.data_ptr<int64_t>();
  }
  if (key_valid.defined()) {
    valid = key_valid.to(at::kCPU, at::kByte).contiguous();
    TORCH_CHECK(valid.numel() == batch * keys, "CausalAttend: key_valid is not [batch, keys]");
    args.key_valid = valid.data_ptr<uint8_t>();
  }
  args.window = window ? *window : 0;
  if (q.scalar_type() == at::kFloat) {
    kernels::PrefillAttentionF32(args, Data<float>(qc), Data<float>(kc), Data<float>(vc),
                                 Data<float>(out));
  } else {
    kernels::PrefillAttentionBf16(args, Data<kernels::bf16>(qc), Data<kernels::bf16>(kc),
                                  Data<kernels::bf16>(vc), Data<kernels::bf16>(out));
  }
  return out;
}

}  // namespace icae
