// A Llama/Mistral decoder-only transformer in LibTorch, matching HF transformers' math: RMSNorm
// with float32 accumulation, rotate-half RoPE, grouped-query causal attention (optional sliding
// window) with float32 softmax, SiLU-gated MLP, final norm, lm_head.
//
// After construction a Transformer is immutable and may be shared by any number of threads; per
// request state (KVCache) is owned by the caller and passed in. Methods throw c10::Error on
// internal failures; callers at module boundaries convert with CatchTorch (torch_status.h).
// Gradients flow when the caller enables them (the trainer reuses this class).
#ifndef ICAE_COMMON_MODEL_TRANSFORMER_H_
#define ICAE_COMMON_MODEL_TRANSFORMER_H_

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/adapter.h"
#include "common/model/kv_cache.h"
#include "common/model/model_config.h"
#include "common/model/runtime_options.h"
#include "common/model/weights.h"

namespace icae {

// Unmerged LoRA for training, on any subset of the seven projections (PEFT's module names
// q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj): y += scaling * (x A^T) B^T.
// layers[l] maps a module name to its pair; a module absent from the map has no delta.
struct LoraWeights {
  double scaling = 1.0;
  std::vector<std::map<std::string, LoraPair>> layers;
};

// Keys (after RoPE) and values of every layer, each [batch, kv_heads, seq, head_dim].
struct LayerKv {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
};

// Positions of a Forward whose keys and values are given instead of computed from their
// embeddings (KV slots, SlotKind::kKv, read by the decoder): in every layer, where `mask`
// [batch, seq] (bool) is true, kv.keys[l] / kv.values[l] [batch, kv_heads, seq, head_dim] replace
// what the layer computed. The hidden states at those positions are meaningless.
struct KvOverride {
  at::Tensor mask;
  LayerKv kv;
};

class Transformer {
 public:
  Transformer(ModelConfig config, TransformerWeights weights, Runtime runtime);

  // Loads an HF model directory. With `merge` the adapter's LoRA is merged into this copy (the
  // encoder); without, the base weights are used as stored (the decoder).
  static absl::StatusOr<std::unique_ptr<Transformer>> Load(const std::string& dir,
                                                           const Runtime& runtime,
                                                           const Adapter* merge = nullptr);

  const ModelConfig& config() const { return config_; }
  const TransformerWeights& weights() const { return weights_; }
  at::ScalarType dtype() const { return runtime_.dtype; }
  at::Device device() const { return runtime_.device; }
  at::TensorOptions options() const { return at::TensorOptions().dtype(dtype()).device(device()); }

  // Token embeddings: ids [...] int64 -> [..., hidden] in the compute dtype.
  at::Tensor Embed(const at::Tensor& ids) const;

  // Full causal forward without a cache.
  //   embeds:    [batch, seq, hidden]
  //   positions: [batch, seq] int64 (RoPE positions)
  //   key_valid: [batch, seq] bool, false marks padding keys; undefined = no padding.
  //   kv_in:     positions whose keys and values are given (KV slots), or null.
  //   kv_out:    when set, receives every layer's keys and values (the KV-slot encoder).
  //   keep_rows: [batch, n] int64 indices into seq: only those rows' hidden states are returned,
  //              and the last layer computes only them (its keys and values still come from every
  //              row); undefined = every row.
  // Returns the final-normed hidden states [batch, seq (or n), hidden].
  at::Tensor Forward(const at::Tensor& embeds, const at::Tensor& positions,
                     const at::Tensor& key_valid = {}, const LoraWeights* lora = nullptr,
                     const KvOverride* kv_in = nullptr, LayerKv* kv_out = nullptr,
                     const at::Tensor& keep_rows = {}) const;

  // float32 logits: hidden [..., hidden] -> [..., vocab].
  at::Tensor Logits(const at::Tensor& hidden) const;

  // Appends one sequence's embeds [seq, hidden] to `cache` (positions continue from
  // cache.length()); returns the final-normed hidden states [seq, hidden].
  at::Tensor Prefill(const at::Tensor& embeds, KVCache& cache) const;

  // Appends KV slots `kv` [layers, 2, kv_heads, n, head_dim] to `cache` as they are: the n
  // positions take these keys and values instead of computing any (500xCompressor's decoder).
  void AppendKv(const at::Tensor& kv, KVCache& cache) const;

  // One new position for each sequence: embeds [batch, hidden], caches[i] for row i. Returns the
  // final-normed hidden states [batch, hidden]. Each sequence attends only to its own cache, so a
  // row's result does not depend on the others in the batch.
  at::Tensor DecodeStep(const at::Tensor& embeds, absl::Span<KVCache* const> caches) const;

  // Positions of one more sequence's prompt that ride along a decode step (chunked prefill
  // interleaved with decode, as Sarathi-Serve schedules it): `embeds` [n, hidden] are appended to
  // `cache` (no cache of the decode batch) as Prefill would append them.
  struct StepChunk {
    at::Tensor embeds;
    KVCache* cache = nullptr;
  };
  // DecodeStep with `chunk`'s positions in the same pass: while batch + n <=
  // kernels::kMaxSmallBatch the rows of both go through each weight matrix together, so the
  // weights are read once for both and the running sequences wait for a little arithmetic, not
  // for a separate prefill (beyond it the chunk's rows are a product of their own). The decode
  // rows are DecodeStep's bit for bit with the CPU kernels (the small-batch product's rows are
  // independent); the chunk's final-normed hidden states [n, hidden] (in *chunk_hidden) equal
  // Prefill's up to the products' rounding.
  at::Tensor DecodeStep(const at::Tensor& embeds, absl::Span<KVCache* const> caches,
                        const StepChunk& chunk, at::Tensor* chunk_hidden) const;

  // A new empty cache for this model, room for `capacity` positions; with `prefix` (a complete
  // cache of this model, shared and never written again) it continues after the prefix's positions.
  KVCache NewCache(int64_t capacity, std::shared_ptr<const KVCache> prefix = nullptr) const;
  // The same with its own positions in `pool`'s blocks (throws when the pool is short of them).
  KVCache NewCache(std::shared_ptr<KvBlockPool> pool, int64_t capacity,
                   std::shared_ptr<const KVCache> prefix = nullptr) const;
  // A pool of `blocks` KV blocks of `block_tokens` positions for this model's caches.
  std::shared_ptr<KvBlockPool> NewBlockPool(int64_t blocks, int64_t block_tokens) const;

 private:
  // cos, sin: [n, head_dim] in the compute dtype for positions [n].
  std::pair<at::Tensor, at::Tensor> Rope(const at::Tensor& positions) const;

  // The attention of `seq` new positions of one sequence after what `cache` holds (a prefill or a
  // chunk): their RoPE tables, the keys they may see, and where a shared prefix ends.
  struct ChunkPlan {
    at::Tensor cos, sin;  // [1, seq, head_dim]
    int64_t first_key = 0, split = 0, total = 0;
  };
  // Reserves room for the `seq` positions in `cache`.
  ChunkPlan PlanChunk(int64_t seq, KVCache& cache) const;
  // Layer `l` of such a chunk: qkv [seq, q_dim + 2 * kv_dim] -> RoPE (unless `rotated`: q and k
  // already rotated in place), keys and values written to `cache`, attention over the cache's
  // keys -> [seq, q_dim].
  at::Tensor AttendChunk(int l, const at::Tensor& qkv, const ChunkPlan& plan, KVCache& cache,
                         bool rotated = false) const;
  // Forward without LoRA deltas or given keys/values, on the CPU kernels (CpuKernelApplies):
  // the residual stream one [rows, hidden] tensor updated in place, each norm fused with the
  // residual add before it, RoPE in place on q and k, SiLU x up in one pass (cpu_kernels.h).
  // Under no gradient only; `input` is embeds in the compute dtype, cos and sin [rows, head_dim].
  at::Tensor ForwardFused(const at::Tensor& embeds, const at::Tensor& input, const at::Tensor& cos,
                          const at::Tensor& sin, const at::Tensor& key_valid, LayerKv* kv_out,
                          const at::Tensor& keep_rows) const;
  at::Tensor Step(const at::Tensor& embeds, absl::Span<KVCache* const> caches,
                  const StepChunk* chunk, at::Tensor* chunk_hidden) const;

  ModelConfig config_;
  TransformerWeights weights_;
  Runtime runtime_;
  at::Tensor inv_freq_;  // [head_dim / 2] float32
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_TRANSFORMER_H_
