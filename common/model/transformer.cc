#include "common/model/transformer.h"

#include <cmath>
#include <limits>
#include <optional>

#include "common/base/status_macros.h"
#include "common/model/kernels/cpu_kernels.h"
#include "common/model/ops.h"
#include "common/model/torch_status.h"

namespace icae {

Transformer::Transformer(ModelConfig config, TransformerWeights weights, Runtime runtime)
    : config_(std::move(config)), weights_(std::move(weights)), runtime_(runtime) {
  const int64_t d = config_.head_dim;
  // As HF: inv_freq = 1 / theta^(arange(0, d, 2) / d), in float32.
  at::Tensor exponent = at::arange(0, d, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
                        static_cast<double>(d);
  inv_freq_ = (1.0 / at::pow(config_.rope_theta, exponent)).to(runtime_.device);
}

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Load(const std::string& dir,
                                                               const Runtime& runtime,
                                                               const Adapter* merge) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  ASSIGN_OR_RETURN(TransformerWeights weights,
                   LoadWeights(dir, config, merge, runtime.dtype, runtime.device));
  return CatchTorch("building the model", [&]() -> absl::StatusOr<std::unique_ptr<Transformer>> {
    return std::make_unique<Transformer>(std::move(config), std::move(weights), runtime);
  });
}

KVCache Transformer::NewCache(int64_t capacity, std::shared_ptr<const KVCache> prefix) const {
  return KVCache(config_, capacity, options(), std::move(prefix));
}

KVCache Transformer::NewCache(std::shared_ptr<KvBlockPool> pool, int64_t capacity,
                              std::shared_ptr<const KVCache> prefix) const {
  return KVCache(config_, std::move(pool), capacity, std::move(prefix));
}

std::shared_ptr<KvBlockPool> Transformer::NewBlockPool(int64_t blocks,
                                                       int64_t block_tokens) const {
  return std::make_shared<KvBlockPool>(config_, blocks, block_tokens, options());
}

at::Tensor Transformer::Embed(const at::Tensor& ids) const {
  return at::embedding(weights_.embed, ids.to(device(), at::kLong));
}

std::pair<at::Tensor, at::Tensor> Transformer::Rope(const at::Tensor& positions) const {
  // angles[n, i] = position[n] * inv_freq[i] in float32; emb = cat(angles, angles).
  at::Tensor angles = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;
  at::Tensor emb = at::cat({angles, angles}, -1);
  return {emb.cos().to(dtype()), emb.sin().to(dtype())};
}

at::Tensor Transformer::Forward(const at::Tensor& embeds, const at::Tensor& positions,
                                const at::Tensor& key_valid, const LoraWeights* lora,
                                const KvOverride* kv_in, LayerKv* kv_out,
                                const at::Tensor& keep_rows) const {
  const int64_t batch = embeds.size(0), seq = embeds.size(1);
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, d = config_.head_dim;
  const int64_t q_dim = config_.q_dim(), kv_dim = config_.kv_dim();
  auto [cos, sin] = Rope(positions.to(device()).reshape({-1}));
  at::Tensor x = embeds.to(dtype());  // [batch, seq, hidden]
  if (lora == nullptr && kv_in == nullptr && !at::GradMode::is_enabled() && CpuKernelApplies(x)) {
    return ForwardFused(embeds, x, cos, sin, key_valid, kv_out, keep_rows);
  }
  cos = cos.view({batch, 1, seq, d});  // [batch, 1, seq, head_dim]
  sin = sin.view({batch, 1, seq, d});
  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    at::Tensor h = RmsNorm(x, w.input_norm, config_.rms_norm_eps);
    at::Tensor qkv = Linear(h, w.wqkv);  // [batch, seq, q_dim + 2 * kv_dim]
    at::Tensor q = qkv.narrow(-1, 0, q_dim);
    at::Tensor k = qkv.narrow(-1, q_dim, kv_dim);
    at::Tensor v = qkv.narrow(-1, q_dim + kv_dim, kv_dim);
    const std::map<std::string, LoraPair>* ll = lora != nullptr ? &lora->layers[l] : nullptr;
    // x A^T B^T * scaling for `module`, or undefined when the layer has no delta there.
    auto delta = [&](const char* module, const at::Tensor& in) -> at::Tensor {
      if (ll == nullptr) return {};
      auto it = ll->find(module);
      if (it == ll->end()) return {};
      return Linear(Linear(in, it->second.a), it->second.b) * lora->scaling;
    };
    auto plus = [](const at::Tensor& y, const at::Tensor& d) { return d.defined() ? y + d : y; };
    q = plus(q, delta("q_proj", h));
    k = plus(k, delta("k_proj", h));
    v = plus(v, delta("v_proj", h));
    q = q.reshape({batch, seq, heads, d}).transpose(1, 2);     // [batch, heads, seq, d]
    k = k.reshape({batch, seq, kv_heads, d}).transpose(1, 2);  // [batch, kv_heads, seq, d]
    v = v.reshape({batch, seq, kv_heads, d}).transpose(1, 2);
    q = ApplyRope(q, cos, sin);
    k = ApplyRope(k, cos, sin);
    if (kv_in != nullptr) {
      at::Tensor given = kv_in->mask.to(device()).view({batch, 1, seq, 1});
      k = at::where(given, kv_in->kv.keys[l].to(k.dtype()), k);
      v = at::where(given, kv_in->kv.values[l].to(v.dtype()), v);
    }
    if (kv_out != nullptr) {
      kv_out->keys.push_back(k);
      kv_out->values.push_back(v);
    }
    int64_t rows_out = seq;
    at::Tensor query_index;  // Every row in order, but in the last layer with keep_rows.
    if (l == config_.num_layers - 1 && keep_rows.defined()) {
      // Only the kept rows go on: their queries and their residual stream.
      rows_out = keep_rows.size(1);
      query_index = keep_rows.to(device(), at::kLong);
      q = q.gather(2,
                   query_index.view({batch, 1, rows_out, 1}).expand({batch, heads, rows_out, d}));
      x = x.gather(1, query_index.view({batch, rows_out, 1}).expand({batch, rows_out, x.size(2)}));
    }
    at::Tensor attn = CausalAttend(q, {k}, {v}, query_index, key_valid, config_.sliding_window);
    attn = attn.transpose(1, 2).reshape({batch, rows_out, q_dim});
    x = x + plus(Linear(attn, w.wo), delta("o_proj", attn));
    h = RmsNorm(x, w.post_norm, config_.rms_norm_eps);
    at::Tensor gate_delta = delta("gate_proj", h), up_delta = delta("up_proj", h);
    const bool mlp_lora =
        gate_delta.defined() || up_delta.defined() || (ll != nullptr && ll->count("down_proj") > 0);
    if (!mlp_lora) {
      x = x + Mlp(h, w.w_gate_up, w.w_down);
      continue;
    }
    const int64_t inter = config_.intermediate_size;
    at::Tensor gate_up = Linear(h, w.w_gate_up);
    at::Tensor gate = plus(gate_up.narrow(-1, 0, inter), gate_delta);
    at::Tensor up = plus(gate_up.narrow(-1, inter, inter), up_delta);
    at::Tensor act = at::silu(gate) * up;
    x = x + plus(Linear(act, w.w_down), delta("down_proj", act));
  }
  return RmsNorm(x, weights_.final_norm, config_.rms_norm_eps);
}

at::Tensor Transformer::ForwardFused(const at::Tensor& embeds, const at::Tensor& input,
                                     const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& key_valid, LayerKv* kv_out,
                                     const at::Tensor& keep_rows) const {
  const int64_t batch = embeds.size(0), seq = embeds.size(1), hidden = config_.hidden_size;
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, d = config_.head_dim;
  const int64_t q_dim = config_.q_dim(), kv_dim = config_.kv_dim(), width = q_dim + 2 * kv_dim;
  // The residual stream [batch * rows, hidden], a tensor of this call's own (updated in place).
  at::Tensor x = input.reshape({batch * seq, hidden}).contiguous();
  if (x.is_alias_of(embeds)) x = x.clone();
  at::Tensor pending;  // The previous layer's MLP output, added to x by the next norm.
  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    at::Tensor h = AddRmsNorm(x, pending, w.input_norm, config_.rms_norm_eps);
    at::Tensor qkv = Linear(h, w.wqkv);  // [batch * seq, width]
    ApplyRopeInPlace(qkv, heads + kv_heads, d, cos, sin);  // q's and k's heads side by side.
    auto heads_of = [&](int64_t offset, int64_t n) {  // [batch, n, seq, d], a view of qkv
      return qkv.view({batch, seq, width}).narrow(-1, offset, n * d).view({batch, seq, n, d})
          .transpose(1, 2);
    };
    at::Tensor q = heads_of(0, heads), k = heads_of(q_dim, kv_heads);
    at::Tensor v = heads_of(q_dim + kv_dim, kv_heads);
    if (kv_out != nullptr) {
      kv_out->keys.push_back(k);
      kv_out->values.push_back(v);
    }
    int64_t rows_out = seq;
    at::Tensor query_index;
    if (l == config_.num_layers - 1 && keep_rows.defined()) {
      rows_out = keep_rows.size(1);
      query_index = keep_rows.to(device(), at::kLong);
      q = q.gather(2,
                   query_index.view({batch, 1, rows_out, 1}).expand({batch, heads, rows_out, d}));
      x = x.view({batch, seq, hidden})
              .gather(1, query_index.view({batch, rows_out, 1}).expand({batch, rows_out, hidden}))
              .reshape({batch * rows_out, hidden});
    }
    // [batch, heads, rows, d] laid out as [batch, rows, heads, d]: a view as rows of q_dim.
    at::Tensor attn = CausalAttend(q, {k}, {v}, query_index, key_valid, config_.sliding_window)
                          .transpose(1, 2)
                          .reshape({batch * rows_out, q_dim});
    h = AddRmsNorm(x, Linear(attn, w.wo), w.post_norm, config_.rms_norm_eps);
    pending = Linear(SiluMul(Linear(h, w.w_gate_up)), w.w_down);
  }
  return AddRmsNorm(x, pending, weights_.final_norm, config_.rms_norm_eps)
      .view({batch, x.size(0) / batch, hidden});
}

at::Tensor Transformer::Logits(const at::Tensor& hidden) const {
  // Decode's few rows stream the head through the small-batch kernel; many rows are a GEMM.
  return SmallBatchLinear(hidden, weights_.lm_head).to(at::kFloat);
}

void Transformer::AppendKv(const at::Tensor& kv, KVCache& cache) const {
  const int64_t n = kv.size(3);
  cache.Reserve(n);
  at::Tensor cast = kv.to(device(), dtype());
  for (int l = 0; l < config_.num_layers; ++l) cache.Write(l, cast[l][0], cast[l][1]);
  cache.Advance(n);
}

Transformer::ChunkPlan Transformer::PlanChunk(int64_t seq, KVCache& cache) const {
  ChunkPlan plan;
  const int64_t past = cache.length();
  plan.total = past + seq;
  cache.Reserve(seq);
  at::Tensor positions =
      at::arange(past, plan.total, at::TensorOptions().dtype(at::kLong).device(device()));
  auto [cos, sin] = Rope(positions);  // [seq, d]
  plan.cos = cos.unsqueeze(0);        // [1, seq, d]
  plan.sin = sin.unsqueeze(0);
  // Only the key range a query can see is read (all of it without a sliding window).
  plan.first_key =
      config_.sliding_window ? std::max<int64_t>(0, past - *config_.sliding_window + 1) : 0;
  plan.split = std::max(plan.first_key, cache.prefix_length());
  return plan;
}

at::Tensor Transformer::AttendChunk(int l, const at::Tensor& qkv, const ChunkPlan& plan,
                                    KVCache& cache, bool rotated) const {
  const int64_t seq = qkv.size(0);
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, d = config_.head_dim;
  const int64_t q_dim = config_.q_dim(), kv_dim = config_.kv_dim();
  at::Tensor q = qkv.narrow(-1, 0, q_dim).reshape({seq, heads, d}).transpose(0, 1);
  at::Tensor k = qkv.narrow(-1, q_dim, kv_dim).reshape({seq, kv_heads, d}).transpose(0, 1);
  at::Tensor v =
      qkv.narrow(-1, q_dim + kv_dim, kv_dim).reshape({seq, kv_heads, d}).transpose(0, 1);
  if (!rotated) {
    q = ApplyRope(q, plan.cos, plan.sin);  // [heads, seq, d]
    k = ApplyRope(k, plan.cos, plan.sin);  // [kv_heads, seq, d]
  }
  cache.Write(l, k, v);
  // Keys [first_key, total) in up to two parts: a shared prefix's, then the cache's own.
  std::vector<at::Tensor> keys, values;  // [1, kv_heads, n, d] each
  if (plan.first_key < plan.split) {
    keys.push_back(cache.Keys(l, plan.first_key, plan.split).unsqueeze(0));
    values.push_back(cache.Values(l, plan.first_key, plan.split).unsqueeze(0));
  }
  keys.push_back(cache.Keys(l, plan.split, plan.total).unsqueeze(0));
  values.push_back(cache.Values(l, plan.split, plan.total).unsqueeze(0));
  at::Tensor attn = CausalAttend(q.unsqueeze(0), keys, values, at::Tensor(), at::Tensor(),
                                 config_.sliding_window);  // [1, heads, seq, d]
  return attn[0].transpose(0, 1).reshape({seq, q_dim});
}

at::Tensor Transformer::Prefill(const at::Tensor& embeds, KVCache& cache) const {
  const int64_t seq = embeds.size(0);
  const ChunkPlan plan = PlanChunk(seq, cache);
  // The residual stream [seq, hidden], a tensor of this call's own, updated in place; the fused
  // forms (AddRmsNorm, ApplyRopeInPlace, SiluMul in Mlp) are the CPU kernels where they apply and
  // the same ATen expressions otherwise (serving only: nothing here records a gradient).
  at::Tensor x = embeds.to(dtype()).contiguous();
  if (x.is_alias_of(embeds)) x = x.clone();
  // A short prefill (a question after cached slots) is a weight stream, not a GEMM: up to
  // kernels::kMaxSmallBatch rows go through the small-batch products, which read each weight
  // once (SmallBatchLinear passes anything longer to the GEMM).
  const bool small = seq <= kernels::kMaxSmallBatch;
  const at::Tensor cos = plan.cos[0], sin = plan.sin[0];  // [seq, head_dim]
  at::Tensor pending;  // The previous layer's MLP output, added to x by the next norm.
  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    at::Tensor h = AddRmsNorm(x, pending, w.input_norm, config_.rms_norm_eps);
    at::Tensor qkv = SmallBatchLinear(h, w.wqkv);  // [seq, q_dim + 2 * kv_dim]
    ApplyRopeInPlace(qkv, config_.num_heads + config_.num_kv_heads, config_.head_dim, cos, sin);
    at::Tensor attn = AttendChunk(l, qkv, plan, cache, /*rotated=*/true);  // [seq, q_dim]
    h = AddRmsNorm(x, SmallBatchLinear(attn, w.wo), w.post_norm, config_.rms_norm_eps);
    pending = Mlp(h, w.w_gate_up, w.w_down, small);
  }
  cache.Advance(seq);
  return AddRmsNorm(x, pending, weights_.final_norm, config_.rms_norm_eps);
}

at::Tensor Transformer::DecodeStep(const at::Tensor& embeds,
                                   absl::Span<KVCache* const> caches) const {
  return Step(embeds, caches, nullptr, nullptr);
}

at::Tensor Transformer::DecodeStep(const at::Tensor& embeds, absl::Span<KVCache* const> caches,
                                   const StepChunk& chunk, at::Tensor* chunk_hidden) const {
  TORCH_CHECK(chunk.cache != nullptr && chunk_hidden != nullptr,
              "DecodeStep: a chunk needs its cache and an output");
  for (KVCache* cache : caches) {
    TORCH_CHECK(cache != chunk.cache, "DecodeStep: the chunk's cache is in the decode batch");
  }
  return Step(embeds, caches, &chunk, chunk_hidden);
}

at::Tensor Transformer::Step(const at::Tensor& embeds, absl::Span<KVCache* const> caches,
                             const StepChunk* chunk, at::Tensor* chunk_hidden) const {
  const int64_t batch = embeds.size(0);
  const int64_t n = chunk != nullptr ? chunk->embeds.size(0) : 0;  // Chunk rows after the batch.
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, d = config_.head_dim;
  const int64_t q_dim = config_.q_dim(), kv_dim = config_.kv_dim();
  std::optional<ChunkPlan> plan;
  if (n > 0) plan = PlanChunk(n, *chunk->cache);
  // The residual stream, updated in place (AddRmsNorm): a tensor of this step's own.
  at::Tensor x = n > 0 ? at::cat({embeds.to(dtype()), chunk->embeds.to(dtype())})
                       : embeds.to(dtype()).contiguous();  // [batch + n, hidden]
  if (x.is_alias_of(embeds)) x = x.clone();
  // With the CPU kernels the chunk's rows attend in the decode kernel's ragged batch too: row
  // past + i of the chunk reads its cache up to itself (causal) in place. Otherwise they attend
  // as Prefill does (AttendChunk).
  const bool fused = CpuKernelApplies(x);
  const int64_t attending = fused ? batch + n : batch;  // Rows of the kernel's batch.
  // The kernel's rows: each reads its sequence's cache over [attend_begin, attend_end), all of it
  // or its sliding window; a chunk row's sequence is the chunk's.
  std::vector<int64_t> lengths(attending);  // The row's position.
  std::vector<const KVCache*> row_cache(attending);
  for (int64_t b = 0; b < batch; ++b) {
    caches[b]->Reserve(1);
    lengths[b] = caches[b]->length();
    row_cache[b] = caches[b];
  }
  for (int64_t r = batch; r < attending; ++r) {
    lengths[r] = plan->total - n + (r - batch);
    row_cache[r] = chunk->cache;
  }
  at::Tensor positions = at::tensor(lengths, at::TensorOptions().dtype(at::kLong)).to(device());
  const auto [cos_rows, sin_rows] = Rope(positions);  // [attending, d]
  const at::Tensor cos = cos_rows.unsqueeze(1);       // [attending, 1, d]
  const at::Tensor sin = sin_rows.unsqueeze(1);
  const double sqrt_d = std::sqrt(static_cast<double>(d));
  at::Tensor attn = at::empty({batch + n, q_dim}, options());
  // The rows go through each product together while they fit the small-batch kernel (weights read
  // once); beyond it the decode rows keep their own small-batch call, so their bits never depend
  // on the chunk, and the chunk's rows are a GEMM.
  const bool together = n == 0 || batch + n <= kernels::kMaxSmallBatch;
  auto rows = [&](const at::Tensor& in, auto&& product) -> at::Tensor {
    if (together) return product(in, /*small_batch=*/true);
    return at::cat({product(in.narrow(0, 0, batch), true), product(in.narrow(0, batch, n), false)});
  };
  auto linear = [](const at::Tensor& w) {
    return [&w](const at::Tensor& in, bool small_batch) {
      return small_batch ? SmallBatchLinear(in, w) : Linear(in, w);
    };
  };
  std::vector<int64_t> attend_begin(attending), attend_end(attending), capacity(attending);
  std::vector<int64_t> prefix_length(attending), prefix_capacity(attending);
  // Caches in a KvBlockPool's blocks: their block tables (null for caches with tensors of their
  // own).
  std::vector<const int32_t*> blocks(attending), prefix_blocks(attending);
  bool any_prefix = false, any_blocks = false;
  int64_t block_tokens = 0, pool_blocks = 0;
  auto note_blocks = [&](const KVCache& cache, const int32_t** table) {
    if (cache.pool() == nullptr) return;
    TORCH_CHECK((block_tokens == 0 || block_tokens == cache.pool()->block_tokens()) &&
                    (pool_blocks == 0 || pool_blocks == cache.pool()->total_blocks()),
                "DecodeStep: the caches' pools differ in shape");
    block_tokens = cache.pool()->block_tokens();
    pool_blocks = cache.pool()->total_blocks();
    *table = cache.blocks().data();
    any_blocks = true;
  };
  for (int64_t r = 0; r < attending; ++r) {
    attend_end[r] = lengths[r] + 1;
    attend_begin[r] =
        config_.sliding_window ? std::max<int64_t>(0, attend_end[r] - *config_.sliding_window) : 0;
    capacity[r] = row_cache[r]->capacity();
    prefix_length[r] = row_cache[r]->prefix_length();
    prefix_capacity[r] = prefix_length[r] > 0 ? row_cache[r]->prefix()->capacity() : 0;
    any_prefix = any_prefix || prefix_length[r] > 0;
    note_blocks(*row_cache[r], &blocks[r]);
    if (prefix_length[r] > 0) note_blocks(*row_cache[r]->prefix(), &prefix_blocks[r]);
  }
  kernels::DecodeAttentionArgs args;
  args.batch = attending;
  args.heads = heads;
  args.kv_heads = kv_heads;
  args.d = d;
  args.scale = static_cast<float>(1.0 / sqrt_d);
  args.capacity = capacity.data();
  args.begin = attend_begin.data();
  args.end = attend_end.data();
  if (any_prefix) {
    args.prefix_length = prefix_length.data();
    args.prefix_capacity = prefix_capacity.data();
  }
  if (any_blocks) {
    args.blocks = blocks.data();
    args.prefix_blocks = prefix_blocks.data();
    args.block_tokens = block_tokens;
    args.pool_blocks = pool_blocks;
  }
  // The chunk's rows are one run: each key block of its cache is read once for all of them.
  std::vector<int64_t> run(attending, 1);
  if (attending > batch) {
    std::fill(run.begin() + batch, run.end(), 0);
    run[batch] = n;
    args.run = run.data();
  }
  std::vector<const void*> key_ptrs(attending), value_ptrs(attending);
  std::vector<const void*> prefix_key_ptrs(attending), prefix_value_ptrs(attending);
  at::Tensor mlp_out;  // The previous layer's MLP output, added to x by the next norm.
  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    at::Tensor h = AddRmsNorm(x, mlp_out, w.input_norm, config_.rms_norm_eps);
    at::Tensor all_qkv = rows(h, linear(w.wqkv));  // [batch + n, q_dim + 2 * kv_dim]
    if (n > 0 && !fused) {
      attn.narrow(0, batch, n)
          .copy_(AttendChunk(l, all_qkv.narrow(0, batch, n), *plan, *chunk->cache));
    }
    at::Tensor qkv = attending < batch + n ? all_qkv.narrow(0, 0, attending) : all_qkv;
    at::Tensor q, k;
    if (fused) {  // q's and k's heads side by side in each row: one pass rotates both.
      ApplyRopeInPlace(qkv, heads + kv_heads, d, cos_rows, sin_rows);
      q = qkv.narrow(-1, 0, q_dim).reshape({attending, heads, d});
      k = qkv.narrow(-1, q_dim, kv_dim).reshape({attending, kv_heads, d});
    } else {
      q = ApplyRope(qkv.narrow(-1, 0, q_dim).reshape({attending, heads, d}), cos, sin);
      k = ApplyRope(qkv.narrow(-1, q_dim, kv_dim).reshape({attending, kv_heads, d}), cos, sin);
    }
    at::Tensor v = qkv.narrow(-1, q_dim + kv_dim, kv_dim).reshape({attending, kv_heads, d});
    if (fused) {
      // One kernel call attends for the whole ragged batch (kernels/cpu_kernels.h).
      for (int64_t b = 0; b < batch; ++b) {
        caches[b]->Write(l, k[b].unsqueeze(1), v[b].unsqueeze(1));
      }
      if (n > 0) {  // All of the chunk's keys first: its rows read the earlier ones.
        chunk->cache->Write(l, k.narrow(0, batch, n).transpose(0, 1),
                            v.narrow(0, batch, n).transpose(0, 1));
      }
      for (int64_t r = 0; r < attending; ++r) {
        key_ptrs[r] = row_cache[r]->KeyStorage(l).data_ptr();
        value_ptrs[r] = row_cache[r]->ValueStorage(l).data_ptr();
        if (prefix_length[r] > 0) {
          prefix_key_ptrs[r] = row_cache[r]->prefix()->KeyStorage(l).data_ptr();
          prefix_value_ptrs[r] = row_cache[r]->prefix()->ValueStorage(l).data_ptr();
        }
      }
      const at::Tensor qc = q.contiguous();
      if (dtype() == at::kFloat) {
        using P = const float* const*;
        kernels::DecodeAttentionF32(args, qc.data_ptr<float>(),
                                    reinterpret_cast<P>(key_ptrs.data()),
                                    reinterpret_cast<P>(value_ptrs.data()), attn.data_ptr<float>(),
                                    reinterpret_cast<P>(prefix_key_ptrs.data()),
                                    reinterpret_cast<P>(prefix_value_ptrs.data()));
      } else {
        using P = const kernels::bf16* const*;
        kernels::DecodeAttentionBf16(args, reinterpret_cast<const kernels::bf16*>(qc.data_ptr()),
                                     reinterpret_cast<P>(key_ptrs.data()),
                                     reinterpret_cast<P>(value_ptrs.data()),
                                     reinterpret_cast<kernels::bf16*>(attn.data_ptr()),
                                     reinterpret_cast<P>(prefix_key_ptrs.data()),
                                     reinterpret_cast<P>(prefix_value_ptrs.data()));
      }
    } else {
      for (int64_t b = 0; b < batch; ++b) {
        KVCache& cache = *caches[b];
        cache.Write(l, k[b].unsqueeze(1), v[b].unsqueeze(1));
        const int64_t begin = attend_begin[b], end = attend_end[b];
        const int64_t split = std::max(begin, prefix_length[b]);
        std::vector<at::Tensor> keys, values;  // [1, kv_heads, n, d]: prefix part, own part
        if (begin < split) {
          keys.push_back(cache.Keys(l, begin, split).unsqueeze(0));
          values.push_back(cache.Values(l, begin, split).unsqueeze(0));
        }
        keys.push_back(cache.Keys(l, split, end).unsqueeze(0));
        values.push_back(cache.Values(l, split, end).unsqueeze(0));
        at::Tensor qb = q[b].view({1, heads, 1, d});
        attn[b].copy_(AttendParts(qb, keys, values, at::Tensor()).view({q_dim}));
      }
    }
    h = AddRmsNorm(x, rows(attn, linear(w.wo)), w.post_norm, config_.rms_norm_eps);
    mlp_out = rows(h, [&w](const at::Tensor& in, bool small_batch) {
      return Mlp(in, w.w_gate_up, w.w_down, small_batch);
    });
  }
  for (KVCache* cache : caches) cache->Advance(1);
  at::Tensor out = AddRmsNorm(x, mlp_out, weights_.final_norm, config_.rms_norm_eps);
  if (n == 0) return out;
  chunk->cache->Advance(n);
  *chunk_hidden = out.narrow(0, batch, n);
  return out.narrow(0, 0, batch);
}

}  // namespace icae
