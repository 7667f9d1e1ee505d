// Checks a GenerateInput against the loaded model and the engine's limits (tokenizing its text)
// and turns it into what the prefill will embed. Errors (each names the field and the limit):
//   FAILED_PRECONDITION  slots whose encoder_id is not this decoder's (both ids named), or of
//                        another kind (KV vs embedding) than its adapter makes; text
//                        or stop strings without a tokenizer; a template the model cannot spell
//   INVALID_ARGUMENT     no context part and no prompt; slot tensor not [n > 0, hidden] (KV:
//                        [layers, 2, kv_heads, n > 0, head_dim]) of a float dtype; NaN or Inf
//                        in slots; KV slots at the prompt's end;
//                        token ids outside the vocabulary; unknown template; context at or past
//                        --max_context_tokens; max_new_tokens above --max_new_tokens; a request
//                        that could never fit --max_kv_tokens; bad sampling or stop strings
// Thread-safe (the model is immutable).
#ifndef ICAE_DECODER_SERVICE_ENGINE_REQUEST_VALIDATOR_H_
#define ICAE_DECODER_SERVICE_ENGINE_REQUEST_VALIDATOR_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/generation_params.h"
#include "common/model/slot_decoder.h"
#include "decoder_service/engine/engine_options.h"
#include "decoder_service/engine/generate_input.h"
#include "decoder_service/engine/prefix_cache.h"

namespace icae::decoder {

inline constexpr int kMaxContextParts = 1024;
inline constexpr int kMaxStopStrings = 8;
inline constexpr int kMaxStopBytes = 128;

struct PreparedRequest {
  // What the prefill reads, validated, laid out by `tmpl`: a waiting request holds these (slot
  // tensors as sent, token ids), never embeddings; kept until the request ends (a preempted
  // request embeds them again).
  PromptTemplate tmpl = PromptTemplate::kRaw;
  std::vector<ContextPart> parts;
  std::vector<int> prompt_ids;
  // The model's input (embeddings, and the KV of KV slots), compute dtype and device: built at
  // admission on the scheduler thread (BuildEmbeds) and released once prefilled.
  PromptInput input;
  // max_new_tokens resolved: the request's (or the default), cut to what the context limit
  // leaves (the sequence then ends with LENGTH there).
  GenerationParams params;
  bool ignore_eos = false;
  bool keep_step_logits = false;  // LocalInput::keep_step_logits.
  absl::Time deadline = absl::InfiniteFuture();
  int slot_tokens = 0;
  int prompt_tokens = 0;
  int uncompressed_context_tokens = 0;

  int64_t context_positions = 0;  // Positions of the laid-out prompt (input.positions()).

  // Slot-prefix reuse: the leading positions whose KV may be shared with other requests over the
  // same context (ContextPrefixPieces; 0: none, the request opted out, or the cache is off) and
  // their content, the prefix cache's key.
  int64_t prefix_positions = 0;
  PrefixKey prefix_key;

  int64_t positions() const { return context_positions; }
  // KV-cache positions the request may ever use.
  int64_t reserved_positions() const { return positions() + params.max_new_tokens; }
};

// KV positions, in whole blocks of `block` positions, that `p` holds while it covers its first
// `upto` positions (context and generated): one cache, or a shared prefix (its own blocks) and a
// cache after it; with `prefix_hit` the prefix is another's and not counted.
int64_t KvPositionsNeeded(const PreparedRequest& p, int64_t upto, bool prefix_hit, int64_t block);

absl::StatusOr<PreparedRequest> PrepareRequest(const SlotDecoder& model,
                                               const EngineOptions& options, GenerateInput input);
// The same for an in-process request (its parts trusted, see LocalInput).
absl::StatusOr<PreparedRequest> PrepareLocalRequest(const SlotDecoder& model,
                                                    const EngineOptions& options,
                                                    LocalInput input);

// Embeds the request's prompt (sets `input`).
absl::Status BuildEmbeds(const SlotDecoder& model, PreparedRequest& prepared);

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_REQUEST_VALIDATOR_H_
