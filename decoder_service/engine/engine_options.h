// Runtime limits of the decoder engine (flags, never the checkpoint). See docs/operations.md,
// "Decoder only".
#ifndef ICAE_DECODER_SERVICE_ENGINE_ENGINE_OPTIONS_H_
#define ICAE_DECODER_SERVICE_ENGINE_ENGINE_OPTIONS_H_

#include <cstdint>

#include "absl/status/status.h"

namespace icae::decoder {

// `positions` rounded up to whole blocks of `block` positions (what a KV cache in the pool holds).
inline int64_t RoundUpToBlock(int64_t positions, int64_t block) {
  return (positions + block - 1) / block * block;
}

struct EngineOptions {
  // Sequences decoding together (the running batch).
  int max_running = 16;
  // The KV pool (rounded up to whole blocks, allocated at start-up): positions in use, summed
  // over the running sequences' own caches (whole blocks, taken as they grow) and every shared
  // context prefix while it exists, never pass it; when a sequence cannot
  // grow, the youngest admitted request is preempted (recomputed later), so the budget is never
  // overrun and no request fails for lack of KV.
  int64_t max_kv_tokens = 65536;
  // Positions per block of the KV pool (every cache holds whole blocks): admission reserves a
  // request's context in blocks, each running sequence grows by blocks (at least a quarter of
  // what it holds).
  int kv_block_tokens = 16;
  // Requests accepted beyond the free running slots; more are RESOURCE_EXHAUSTED.
  int max_waiting = 256;
  // Longest total context (slots + text + prompt + generated) of one request, positions. 0 = the
  // model's max_position_embeddings (also the upper bound).
  int max_context_tokens = 0;
  // Default and upper limit of a request's max_new_tokens.
  int max_new_tokens = 512;
  // LibTorch intra-op threads of the scheduler thread; 0 = every core.
  int threads = 0;
  // Chunked prefill: a new request's context is prefilled at most this many positions per
  // scheduler step, between the decode steps of the running sequences, so that a long context
  // does not stall their next tokens. 0 = each context in one piece.
  int prefill_chunk_tokens = 512;
  // With chunking, while sequences are running a new context's positions ride along their decode
  // steps instead of running as steps of their own: each step carries up to this many rows in all
  // (the running sequences' and the context's; at least one context position, at most
  // prefill_chunk_tokens), so the weights are read once for both and the running streams' next
  // token waits only for the extra rows' arithmetic. 16 is the small-batch product's limit
  // (kernels::kMaxSmallBatch). 0 = prefill chunks run as separate steps.
  int mixed_step_rows = 16;
  // Slot-prefix reuse: the KV of a context prefix (template tokens, slots and text up to the
  // prompt) is kept, keyed by its content, for later requests with the same context, up to this
  // many bytes (least recently used dropped first). Kept prefixes also count against
  // max_kv_tokens while they exist; admission drops idle ones when running requests need the room.
  // 0 = off.
  int64_t prefix_cache_bytes = int64_t{1} << 30;

  // The KV pool: max_kv_tokens in whole blocks of kv_block_tokens positions (rounded up), and
  // the positions they hold (the budget the scheduler enforces).
  int64_t KvLimit() const { return RoundUpToBlock(max_kv_tokens, kv_block_tokens); }
  int64_t KvBlocks() const { return KvLimit() / kv_block_tokens; }

  // InvalidArgument names the flag. `model_max_positions` is the model's max_position_embeddings.
  absl::Status Validate(int model_max_positions) const;
  // max_context_tokens with 0 resolved.
  int ContextLimit(int model_max_positions) const {
    return max_context_tokens > 0 ? max_context_tokens : model_max_positions;
  }
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_ENGINE_OPTIONS_H_
