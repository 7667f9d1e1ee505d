#include "common/model/slot_decoder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/utf8.h"
#include "common/model/compressor.h"
#include "common/model/cross_encoder.h"
#include "common/model/fingerprint.h"
#include "common/model/torch_status.h"

namespace icae {
namespace {

// Mistral-7B-Instruct's ids for "[INST]" and " [/INST]" (from ICAE v2's inference code), used
// when a 32000-token model comes without tokenizer.model.
const std::vector<int> kMistralInstOpen = {733, 16289, 28793};
const std::vector<int> kMistralInstClose = {733, 28748, 16289, 28793};

}  // namespace

absl::StatusOr<PromptTemplate> ParsePromptTemplate(absl::string_view name) {
  if (name == "ae") return PromptTemplate::kAe;
  if (name == "icae-v2-instruct") return PromptTemplate::kIcaeV2Instruct;
  if (name == "icae-v1") return PromptTemplate::kIcaeV1;
  if (name == "raw") return PromptTemplate::kRaw;
  return absl::InvalidArgumentError(absl::StrCat("unknown template '", ClipForMessage(name), "' (",
                                                 absl::StrJoin(PromptTemplateNames(), ", "), ")"));
}

absl::string_view PromptTemplateName(PromptTemplate t) {
  switch (t) {
    case PromptTemplate::kAe:
      return "ae";
    case PromptTemplate::kIcaeV2Instruct:
      return "icae-v2-instruct";
    case PromptTemplate::kIcaeV1:
      return "icae-v1";
    case PromptTemplate::kRaw:
      return "raw";
  }
  return "?";
}

std::vector<std::string> PromptTemplateNames() {
  return {"ae", "icae-v2-instruct", "icae-v1", "raw"};
}

std::vector<PromptPiece> LayoutPrompt(PromptTemplate tmpl, size_t num_context_parts,
                                      absl::Span<const int> prompt_ids,
                                      const TemplateTokens& tokens) {
  std::vector<PromptPiece> pieces;
  auto ids = [&](std::vector<int> v) {
    if (!v.empty()) pieces.push_back({PromptPiece::kTokens, std::move(v)});
  };
  auto special = [&](SpecialToken t) { pieces.push_back({PromptPiece::kSpecial, {}, 0, t}); };
  auto context = [&]() {
    for (size_t i = 0; i < num_context_parts; ++i) {
      pieces.push_back({PromptPiece::kContext, {}, i});
    }
  };
  const std::vector<int> prompt(prompt_ids.begin(), prompt_ids.end());
  switch (tmpl) {
    case PromptTemplate::kAe:  // [context][AE]; the prompt is ignored.
      context();
      special(SpecialToken::kAe);
      break;
    case PromptTemplate::kIcaeV2Instruct: {  // <s> [INST] [context][FT] prompt [/INST]
      std::vector<int> open = {tokens.bos_id};
      open.insert(open.end(), tokens.inst_open.begin(), tokens.inst_open.end());
      ids(open);
      context();
      special(SpecialToken::kFt);
      ids(prompt);
      ids(tokens.inst_close);
      break;
    }
    case PromptTemplate::kIcaeV1:  // [context][FT] prompt [FT]
      context();
      special(SpecialToken::kFt);
      ids(prompt);
      special(SpecialToken::kFt);
      break;
    case PromptTemplate::kRaw:  // [context] prompt
      context();
      ids(prompt);
      break;
  }
  return pieces;
}

absl::StatusOr<TemplateTokens> TemplateTokensFor(const ModelConfig& config,
                                                 const Tokenizer* tokenizer) {
  TemplateTokens t;
  t.bos_id = config.bos_token_id;
  if (tokenizer != nullptr) {
    ASSIGN_OR_RETURN(t.inst_open, tokenizer->Encode("[INST]", false));
    ASSIGN_OR_RETURN(t.inst_close, tokenizer->Encode("[/INST]", false));
  } else if (config.vocab_size == 32000) {
    t.inst_open = kMistralInstOpen;
    t.inst_close = kMistralInstClose;
  }
  return t;
}

absl::StatusOr<std::unique_ptr<SlotDecoder>> SlotDecoder::Load(
    const std::string& model_dir, const std::string& adapter_path, const Runtime& runtime,
    const std::vector<std::string>& also_accept) {
  std::unique_ptr<SlotDecoder> decoder(new SlotDecoder());
  ASSIGN_OR_RETURN(decoder->transformer_, Transformer::Load(model_dir, runtime));
  const ModelConfig& config = decoder->config();
  const std::string tokenizer_path = JoinPath(model_dir, "tokenizer.model");
  // A model-only build has no SentencePiece: it reads ids and treats the model as tokenizer-less.
  if (FileExists(tokenizer_path) && Tokenizer::Available()) {
    ASSIGN_OR_RETURN(decoder->tokenizer_, Tokenizer::Load(tokenizer_path));
  }
  ASSIGN_OR_RETURN(decoder->template_tokens_, TemplateTokensFor(config, decoder->tokenizer_.get()));
  if (adapter_path.empty() && !also_accept.empty()) {
    return absl::InvalidArgumentError("more adapters to accept, but no adapter");
  }
  std::string base_fingerprint;
  if (!adapter_path.empty()) {
    ASSIGN_OR_RETURN(base_fingerprint, BaseModelFingerprint(model_dir));
  }
  std::vector<std::string> paths = {adapter_path};
  paths.insert(paths.end(), also_accept.begin(), also_accept.end());
  for (size_t i = 0; i < paths.size() && !adapter_path.empty(); ++i) {
    AcceptedEncoder accepted;
    at::Tensor special;  // [3, hidden] float32
    if (IsCrossEncoderPackage(paths[i])) {
      // A cross encoder writes for one decoder base: this one, or it is refused at start-up.
      ASSIGN_OR_RETURN(CrossEncoder cross, LoadCrossEncoder(paths[i]));
      if (cross.config.decoder_fingerprint != base_fingerprint) {
        return absl::FailedPreconditionError(absl::StrCat(
            paths[i], " is a cross encoder for the decoder base whose fingerprint is ",
            cross.config.decoder_fingerprint, ", but this decoder's base ", model_dir, " has ",
            base_fingerprint));
      }
      if (cross.config.decoder_hidden != config.hidden_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            paths[i], ": decoder_hidden_size ", cross.config.decoder_hidden,
            " but the model's hidden_size is ", config.hidden_size));
      }
      accepted = {cross.encoder_id(), SlotKind::kEmbedding, cross.config.mem_size, cross.path};
      special = cross.special;
    } else {
      ASSIGN_OR_RETURN(Adapter adapter, LoadAdapter(paths[i], config, /*with_lora=*/false));
      accepted = {EncoderId(base_fingerprint, adapter.fingerprint), adapter.config.slot_kind,
                  adapter.config.mem_size, adapter.path};
      special = adapter.memory_embed.narrow(0, adapter.config.mem_size, 3);
    }
    if (decoder->FindEncoder(accepted.encoder_id) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(paths[i], ": the same encoder as an adapter already accepted"));
    }
    decoder->accepted_.push_back(accepted);
    if (i > 0) continue;
    decoder->encoder_id_ = accepted.encoder_id;
    decoder->mem_size_ = accepted.mem_size;
    decoder->slot_kind_ = accepted.kind;
    decoder->adapter_path_ = accepted.adapter_path;
    RETURN_IF_ERROR(CatchTorch("loading special tokens", [&]() -> absl::Status {
      decoder->special_ = special.to(runtime.device, runtime.dtype).contiguous();
      return absl::OkStatus();
    }));
  }
  return decoder;
}

const AcceptedEncoder* SlotDecoder::FindEncoder(absl::string_view encoder_id) const {
  for (const AcceptedEncoder& e : accepted_) {
    if (e.encoder_id == encoder_id) return &e;
  }
  return nullptr;
}

int64_t SlotDecoder::MaxSlotElementsPerPosition() const {
  const ModelConfig& c = config();
  int64_t most = c.hidden_size;
  for (const AcceptedEncoder& e : accepted_) {
    if (e.kind == SlotKind::kKv) {
      most = std::max<int64_t>(most, int64_t{2} * c.num_layers * c.num_kv_heads * c.head_dim);
    }
  }
  return most;
}

absl::StatusOr<std::vector<int>> SlotDecoder::Tokenize(absl::string_view text) const {
  if (tokenizer_ == nullptr) {
    return absl::FailedPreconditionError(
        "the model directory has no tokenizer.model; send token ids instead of text");
  }
  return tokenizer_->Encode(text, /*add_bos=*/false);
}

size_t ContextPrefixPieces(absl::Span<const PromptPiece> layout) {
  size_t end = 0;  // Pieces [0, end) form the prefix.
  for (size_t i = 0; i < layout.size(); ++i) {
    if (layout[i].kind == PromptPiece::kContext) end = i + 1;
  }
  while (end > 0 && end < layout.size() && layout[end].kind == PromptPiece::kSpecial) ++end;
  return end == layout.size() ? end - 1 : end;
}

absl::StatusOr<PromptUsage> SlotDecoder::PlanPrompt(PromptTemplate tmpl,
                                                   absl::Span<const ContextPart> context,
                                                   absl::Span<const int> prompt_ids) const {
  const ModelConfig& config = this->config();
  if (tmpl != PromptTemplate::kRaw && !has_adapter()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "template '", PromptTemplateName(tmpl), "' needs the adapter's special tokens; load one"));
  }
  if (tmpl == PromptTemplate::kIcaeV2Instruct && template_tokens_.inst_open.empty()) {
    return absl::FailedPreconditionError(
        "template 'icae-v2-instruct' needs tokenizer.model to spell [INST] and [/INST]");
  }
  for (size_t i = 0; i < context.size(); ++i) {
    const ContextPart& part = context[i];
    if (part.slots.defined()) {
      RETURN_IF_ERROR(CheckSlotShape(config, part, absl::StrCat("context[", i, "].slots")));
    } else {
      RETURN_IF_ERROR(ValidateTokenIds(part.token_ids, config.vocab_size,
                                       absl::StrCat("context[", i, "].token_ids")));
    }
  }
  RETURN_IF_ERROR(ValidateTokenIds(prompt_ids, config.vocab_size, "prompt"));
  PromptUsage usage;
  const std::vector<PromptPiece> layout =
      LayoutPrompt(tmpl, context.size(), prompt_ids, template_tokens_);
  for (const PromptPiece& piece : layout) {
    switch (piece.kind) {
      case PromptPiece::kTokens:
        usage.text_tokens += static_cast<int>(piece.ids.size());
        break;
      case PromptPiece::kSpecial:
        usage.text_tokens += 1;
        break;
      case PromptPiece::kContext: {
        const ContextPart& part = context[piece.context_index];
        if (part.slots.defined()) {
          usage.slot_tokens += static_cast<int>(part.positions());
        } else {
          usage.text_tokens += static_cast<int>(part.token_ids.size());
        }
        break;
      }
    }
  }
  // The last position's output gives the first token; a KV slot computes none.
  for (auto piece = layout.rbegin(); piece != layout.rend(); ++piece) {
    if (piece->kind == PromptPiece::kTokens && piece->ids.empty()) continue;
    const ContextPart* part =
        piece->kind == PromptPiece::kContext ? &context[piece->context_index] : nullptr;
    if (part != nullptr && part->positions() == 0) continue;
    if (part != nullptr && part->slots.defined() && part->kind == SlotKind::kKv) {
      return absl::InvalidArgumentError(absl::StrCat(
          "context[", piece->context_index, "]: KV slots cannot end the prompt (template '",
          PromptTemplateName(tmpl), "'); add a prompt after them"));
    }
    break;
  }
  if (usage.positions() == 0) return absl::InvalidArgumentError("the prompt is empty");
  return usage;
}

absl::StatusOr<PromptInput> SlotDecoder::BuildPrompt(PromptTemplate tmpl,
                                                     absl::Span<const ContextPart> context,
                                                     absl::Span<const int> prompt_ids,
                                                     PromptUsage* usage) const {
  ASSIGN_OR_RETURN(PromptUsage counted, PlanPrompt(tmpl, context, prompt_ids));
  return CatchTorch("building the prompt", [&]() -> absl::StatusOr<PromptInput> {
    c10::InferenceMode guard;
    const Transformer& model = *transformer_;
    PromptInput input;
    std::vector<at::Tensor> pieces;
    int64_t positions = 0;
    auto add = [&](at::Tensor rows) {
      positions += rows.size(0);
      pieces.push_back(std::move(rows));
    };
    auto add_ids = [&](absl::Span<const int> ids) {
      if (ids.empty()) return;
      std::vector<int64_t> wide(ids.begin(), ids.end());
      add(model.Embed(at::tensor(wide, at::TensorOptions().dtype(at::kLong))));
    };
    for (const PromptPiece& piece :
         LayoutPrompt(tmpl, context.size(), prompt_ids, template_tokens())) {
      switch (piece.kind) {
        case PromptPiece::kTokens:
          add_ids(piece.ids);
          break;
        case PromptPiece::kSpecial:
          add(special_[static_cast<int>(piece.special)].unsqueeze(0));
          break;
        case PromptPiece::kContext: {
          const ContextPart& part = context[piece.context_index];
          if (!part.slots.defined()) {
            add_ids(part.token_ids);
          } else if (part.kind == SlotKind::kKv) {
            input.kv.push_back({positions, part.slots.to(model.device(), model.dtype())});
            add(at::zeros({part.positions(), config().hidden_size}, model.options()));
          } else {
            add(part.slots.to(model.device(), model.dtype()));
          }
          break;
        }
      }
    }
    if (usage != nullptr) *usage = counted;
    input.embeds = at::cat(pieces, 0);
    return input;
  });
}

int64_t ContextPart::positions() const {
  if (!slots.defined()) return static_cast<int64_t>(token_ids.size());
  const int axis = kind == SlotKind::kKv ? 3 : 0;
  return slots.dim() > axis ? slots.size(axis) : 0;
}

absl::Status CheckSlotShape(const ModelConfig& config, const ContextPart& part,
                            absl::string_view field) {
  const at::Tensor& slots = part.slots;
  std::vector<int64_t> want;
  if (part.kind == SlotKind::kKv) {
    want = {config.num_layers, 2, config.num_kv_heads, -1, config.head_dim};
  } else {
    want = {-1, config.hidden_size};
  }
  bool ok = slots.defined() && at::isFloatingType(slots.scalar_type()) &&
            slots.dim() == static_cast<int64_t>(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) {
    ok = want[i] < 0 ? slots.size(i) > 0 : slots.size(i) == want[i];
  }
  if (ok) return absl::OkStatus();
  std::vector<std::string> dims;
  for (int64_t d : want) dims.push_back(d < 0 ? "n > 0" : absl::StrCat(d));
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", part.kind == SlotKind::kKv ? "KV slots [layers, 2, kv_heads, n, head_dim]" : "slots",
      " must be a float tensor [", absl::StrJoin(dims, ", "), "] for this model, got ",
      slots.defined() ? absl::StrCat(std::string(c10::toString(slots.scalar_type())), " [",
                                     absl::StrJoin(slots.sizes(), ", "), "]")
                      : "nothing"));
}

at::Tensor PrefillPrompt(const Transformer& model, const PromptInput& prompt, int64_t begin,
                         int64_t end, KVCache& cache) {
  std::vector<at::Tensor> hidden;
  int64_t at = begin;
  for (const PromptInput::KvRange& range : prompt.kv) {
    if (range.end() <= at) continue;
    if (range.begin >= end) break;
    if (range.begin > at) {  // Computed positions before this KV range.
      hidden.push_back(model.Prefill(prompt.embeds.narrow(0, at, range.begin - at), cache));
      at = range.begin;
    }
    const int64_t n = std::min(end, range.end()) - at;
    model.AppendKv(range.kv.narrow(3, at - range.begin, n), cache);
    hidden.push_back(at::zeros({n, prompt.embeds.size(1)}, prompt.embeds.options()));
    at += n;
  }
  if (at < end) hidden.push_back(model.Prefill(prompt.embeds.narrow(0, at, end - at), cache));
  if (hidden.empty()) return prompt.embeds.narrow(0, begin, 0);
  return hidden.size() == 1 ? hidden[0] : at::cat(hidden, 0);
}

}  // namespace icae
