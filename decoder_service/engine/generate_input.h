// A generation request as the engine receives it: the wire form already decoded (slot tensors
// validated by the codec), nothing checked against the model yet. See request_validator.h.
#ifndef ICAE_DECODER_SERVICE_ENGINE_GENERATE_INPUT_H_
#define ICAE_DECODER_SERVICE_ENGINE_GENERATE_INPUT_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/model/adapter.h"
#include "common/model/generation_params.h"
#include "common/model/slot_decoder.h"

namespace icae::decoder {

// One ordered piece of context.
struct ContextInput {
  enum class Kind { kSlots, kText, kTokenIds };
  Kind kind = Kind::kText;
  // kSlots: [num_slots, hidden] (EMBEDDING) or [layers, 2, kv_heads, num_slots, head_dim] (KV),
  // any dtype as sent.
  at::Tensor slots;
  SlotKind slot_kind = SlotKind::kEmbedding;  // kSlots.
  std::string encoder_id;  // kSlots: who made them.
  int source_tokens = 0;   // kSlots: the span's length before compression (>= 0).
  // kSlots, optional (0 = not given): the encoder's segment count and slots per segment; when
  // given they must agree with the tensor and with this decoder's adapter.
  int num_segments = 0;
  int mem_size = 0;
  std::string text;            // kText: tokenized without BOS.
  std::vector<int> token_ids;  // kTokenIds: placed as they are.
};

struct GenerateInput {
  std::vector<ContextInput> context;
  std::string prompt;           // Tokenized without BOS; ignored by "ae".
  std::vector<int> prompt_ids;  // Used instead of `prompt` when non-empty.
  // "ae", "icae-v2-instruct", "icae-v1", "raw"; empty = icae-v2-instruct with a prompt, else ae.
  std::string template_name;
  // max_new_tokens 0 = the server's default.
  GenerationParams params;
  // Keep generating past EOS (benchmarks that need a fixed output length).
  bool ignore_eos = false;
  // Neither reuse nor keep the KV of this request's context prefix.
  bool skip_prefix_cache = false;
  // The request is cut with DEADLINE_EXCEEDED once this passes.
  absl::Time deadline = absl::InfiniteFuture();
};

// An in-process request (offline generation through the engine: the icae CLI, `icae eval`, the
// trainer's probe, tests): the context already in the model's form and the template chosen. The
// caller made its slots with this model, so there is no encoder_id or NaN check; the prompt's shape,
// the sampling parameters and the engine's limits are checked as for a GenerateInput. Never built
// from the wire.
struct LocalInput {
  PromptTemplate tmpl = PromptTemplate::kRaw;
  std::vector<ContextPart> parts;
  std::vector<int> prompt_ids;
  GenerationParams params;  // max_new_tokens 0 = the engine's default.
  bool ignore_eos = false;
  bool skip_prefix_cache = false;
  // Every step's float32 logits come with its event (GenerationEvent::step_logits).
  bool keep_step_logits = false;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_GENERATE_INPUT_H_
