// The ICAE decoder: the frozen base model (no LoRA) plus the adapter's special-token embeddings
// (AE, LM, FT), the tokenizer when the model directory has one, and prompt assembly by template.
// Immutable after Load and shareable across threads.
#ifndef ICAE_COMMON_MODEL_SLOT_DECODER_H_
#define ICAE_COMMON_MODEL_SLOT_DECODER_H_

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/io/tokenizer.h"
#include "common/model/adapter.h"
#include "common/model/runtime_options.h"
#include "common/model/transformer.h"

namespace icae {

enum class PromptTemplate {
  kAe,              // [context][AE]: autoencoding; the prompt is ignored.
  kIcaeV2Instruct,  // <s> [INST] [context] [FT] prompt [/INST]   (Mistral-7B-Instruct ICAE v2)
  kIcaeV1,          // [context][FT] prompt [FT]                   (Llama-2-chat ICAE v1)
  kRaw,             // [context] prompt
};
absl::StatusOr<PromptTemplate> ParsePromptTemplate(absl::string_view name);
absl::string_view PromptTemplateName(PromptTemplate t);
// The names ParsePromptTemplate accepts.
std::vector<std::string> PromptTemplateNames();

// One ordered piece of context: memory slots or plain token ids.
struct ContextPart {
  // Defined => a slots part, any float dtype: [num_slots, hidden] (embedding slots) or
  // [layers, 2, kv_heads, num_slots, head_dim] (KV slots).
  at::Tensor slots;
  std::vector<int> token_ids;  // Used when `slots` is undefined.
  SlotKind kind = SlotKind::kEmbedding;  // Of `slots`.

  // Decoder positions the part takes (its slots, or its tokens).
  int64_t positions() const;
};

// InvalidArgument naming `field` unless `part.slots` has its kind's shape for `config`:
// [n > 0, hidden] or [layers, 2, kv_heads, n > 0, head_dim], a float dtype.
absl::Status CheckSlotShape(const ModelConfig& config, const ContextPart& part,
                            absl::string_view field);

// A laid-out prompt as the model reads it: an embedding for every position, and the ranges whose
// keys and values are given by KV slots (their embedding rows are zeros, never read).
struct PromptInput {
  struct KvRange {
    int64_t begin = 0;  // First position.
    at::Tensor kv;      // [layers, 2, kv_heads, n, head_dim], compute dtype and device.
    int64_t end() const { return begin + kv.size(3); }
  };
  at::Tensor embeds;  // [positions, hidden], compute dtype and device.
  std::vector<KvRange> kv;  // In order, disjoint.

  int64_t positions() const { return embeds.size(0); }
};

// Appends positions [begin, end) of `prompt` to `cache`, which holds [0, begin): computed
// positions by Transformer::Prefill, KV-slot positions by Transformer::AppendKv. Chunks taken in
// order equal one whole prefill. Returns the final-normed hidden states [end - begin, hidden]
// (zero rows at KV-slot positions, which compute none).
at::Tensor PrefillPrompt(const Transformer& model, const PromptInput& prompt, int64_t begin,
                         int64_t end, KVCache& cache);

// One piece of a decoder input, in order: template or prompt token ids, the context part with
// index `context_index` (slots or text, as the caller holds it), or a special embedding.
struct PromptPiece {
  enum Kind { kTokens, kContext, kSpecial } kind = kTokens;
  std::vector<int> ids;                      // kTokens
  size_t context_index = 0;                  // kContext
  SpecialToken special = SpecialToken::kAe;  // kSpecial
};

// The template ids a layout needs beyond the prompt: BOS and the spelling of [INST] / [/INST].
struct TemplateTokens {
  int bos_id = 1;
  std::vector<int> inst_open;   // "[INST]" without BOS.
  std::vector<int> inst_close;  // "[/INST]".
};

// BOS from the config; [INST] / [/INST] spelled by `tokenizer` (without BOS), or Mistral-7B's ids
// for a 32000-token model without one, else empty.
absl::StatusOr<TemplateTokens> TemplateTokensFor(const ModelConfig& config,
                                                 const Tokenizer* tokenizer);

// The one definition of every template's layout, shared by serving (SlotDecoder::BuildPrompt)
// and training (tools/train), so that what is trained is what is served. Every context part
// appears once, in order, where the template puts the context; empty token pieces are left out.
std::vector<PromptPiece> LayoutPrompt(PromptTemplate tmpl, size_t num_context_parts,
                                      absl::Span<const int> prompt_ids,
                                      const TemplateTokens& tokens);

// The leading pieces of `layout` that do not depend on the prompt: everything up to the last
// context piece and the special tokens right after it (e.g. "<s> [INST] [context] [FT]"), but
// never the whole layout (the last position's logits give the first token, so it is always
// prefilled). Requests with the same context share these positions' KV (slot-prefix reuse).
// Returns the number of pieces; 0 without a context piece.
size_t ContextPrefixPieces(absl::Span<const PromptPiece> layout);

struct PromptUsage {
  int slot_tokens = 0;  // Positions taken by slots.
  int text_tokens = 0;  // Positions taken by text context, template tokens and the prompt.
  int64_t positions() const { return static_cast<int64_t>(slot_tokens) + text_tokens; }
};

// An encoder whose slots a decoder reads: the fingerprint its slots carry, their kind and the
// slots per segment.
struct AcceptedEncoder {
  std::string encoder_id;
  SlotKind kind = SlotKind::kEmbedding;
  int mem_size = 0;
  std::string adapter_path;
};

class SlotDecoder {
 public:
  // `adapter_path` may be empty: then only the "raw" template is available. It is an ICAE
  // adapter of this base or a cross-encoder package written for this base
  // (common/model/cross_encoder.h; another base is FailedPrecondition naming both fingerprints).
  // Its special tokens (AE, LM, FT) serve the templates. `also_accept` names more adapters or
  // packages whose slots this decoder reads too (e.g. a KV adapter beside an embedding one, so
  // one request may mix both kinds); only their encoder ids, kinds and mem_size are used.
  static absl::StatusOr<std::unique_ptr<SlotDecoder>> Load(
      const std::string& model_dir, const std::string& adapter_path, const Runtime& runtime,
      const std::vector<std::string>& also_accept = {});

  const Transformer& transformer() const { return *transformer_; }
  const ModelConfig& config() const { return transformer_->config(); }
  // Null when the model directory has no tokenizer.model.
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  bool has_adapter() const { return special_.defined(); }
  int mem_size() const { return mem_size_; }
  // The kind of slots its adapter's encoder makes (and this decoder reads).
  SlotKind slot_kind() const { return slot_kind_; }
  // The encoder_id of its adapter's slots (empty without an adapter).
  const std::string& accepted_encoder_id() const { return encoder_id_; }
  // Every encoder whose slots it reads: its adapter's first, then `also_accept`'s.
  const std::vector<AcceptedEncoder>& accepted_encoders() const { return accepted_; }
  // The accepted encoder with this id, or null.
  const AcceptedEncoder* FindEncoder(absl::string_view encoder_id) const;
  // Most wire elements one slot position of an accepted kind takes (hidden, or KV's
  // 2 * layers * kv_heads * head_dim).
  int64_t MaxSlotElementsPerPosition() const;
  const std::string& adapter_path() const { return adapter_path_; }

  // The model's input (compute dtype) for `context` and `prompt_ids` laid out by `tmpl`. Slots
  // are cast to the compute dtype; every slot tensor must have its kind's shape for this model
  // with n > 0 slots, and every id must lie inside the vocabulary (InvalidArgument otherwise). KV
  // slots may not be the prompt's last position (it gives the first token's logits).
  absl::StatusOr<PromptInput> BuildPrompt(PromptTemplate tmpl, absl::Span<const ContextPart> context,
                                         absl::Span<const int> prompt_ids,
                                         PromptUsage* usage = nullptr) const;
  // What BuildPrompt would build, checked (the same errors) and counted, without embedding
  // anything: cheap enough for a request's admission check.
  absl::StatusOr<PromptUsage> PlanPrompt(PromptTemplate tmpl, absl::Span<const ContextPart> context,
                                         absl::Span<const int> prompt_ids) const;

  // BOS and [INST] / [/INST] as this decoder spells them (for LayoutPrompt).
  const TemplateTokens& template_tokens() const { return template_tokens_; }
  // The adapter's AE, LM and FT embeddings [3, hidden] (compute dtype); undefined without one.
  const at::Tensor& special_embeddings() const { return special_; }

  // Tokenizes prompt text without BOS; FailedPrecondition without a tokenizer.
  absl::StatusOr<std::vector<int>> Tokenize(absl::string_view text) const;

 private:
  SlotDecoder() = default;
  std::unique_ptr<Transformer> transformer_;
  std::unique_ptr<Tokenizer> tokenizer_;
  at::Tensor special_;  // [3, hidden] compute dtype: AE, LM, FT rows.
  int mem_size_ = 0;
  SlotKind slot_kind_ = SlotKind::kEmbedding;
  std::string encoder_id_;
  std::string adapter_path_;
  std::vector<AcceptedEncoder> accepted_;
  TemplateTokens template_tokens_;
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_SLOT_DECODER_H_
