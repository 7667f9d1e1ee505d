#include "common/model/slot_decoder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/utf8.h"
#include "common/model/compressor.h"
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

absl::StatusOr<std::unique_ptr<SlotDecoder>> SlotDecoder::Load(const std::string& model_dir,
                                                               const std::string& adapter_path,
                                                               const Runtime& runtime) {
  std::unique_ptr<SlotDecoder> decoder(new SlotDecoder());
  ASSIGN_OR_RETURN(decoder->transformer_, Transformer::Load(model_dir, runtime));
  const ModelConfig& config = decoder->config();
  const std::string tokenizer_path = JoinPath(model_dir, "tokenizer.model");
  // A model-only build has no SentencePiece: it reads ids and treats the model as tokenizer-less.
  if (FileExists(tokenizer_path) && Tokenizer::Available()) {
    ASSIGN_OR_RETURN(decoder->tokenizer_, Tokenizer::Load(tokenizer_path));
  }
  ASSIGN_OR_RETURN(decoder->template_tokens_, TemplateTokensFor(config, decoder->tokenizer_.get()));
  if (!adapter_path.empty()) {
    ASSIGN_OR_RETURN(Adapter adapter, LoadAdapter(adapter_path, config, /*with_lora=*/false));
    ASSIGN_OR_RETURN(std::string base_fingerprint, BaseModelFingerprint(model_dir));
    decoder->encoder_id_ = EncoderId(base_fingerprint, adapter.fingerprint);
    decoder->mem_size_ = adapter.config.mem_size;
    decoder->adapter_path_ = adapter.path;
    RETURN_IF_ERROR(CatchTorch("loading special tokens", [&]() -> absl::Status {
      decoder->special_ = adapter.memory_embed.narrow(0, adapter.config.mem_size, 3)
                              .to(runtime.device, runtime.dtype)
                              .contiguous();
      return absl::OkStatus();
    }));
  }
  return decoder;
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
      if (part.slots.dim() != 2 || part.slots.size(0) == 0 ||
          part.slots.size(1) != config.hidden_size ||
          !at::isFloatingType(part.slots.scalar_type())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "context[", i, "].slots must be a float tensor [n > 0, ", config.hidden_size, "]"));
      }
    } else {
      RETURN_IF_ERROR(ValidateTokenIds(part.token_ids, config.vocab_size,
                                       absl::StrCat("context[", i, "].token_ids")));
    }
  }
  RETURN_IF_ERROR(ValidateTokenIds(prompt_ids, config.vocab_size, "prompt"));
  PromptUsage usage;
  for (const PromptPiece& piece :
       LayoutPrompt(tmpl, context.size(), prompt_ids, template_tokens_)) {
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
          usage.slot_tokens += static_cast<int>(part.slots.size(0));
        } else {
          usage.text_tokens += static_cast<int>(part.token_ids.size());
        }
        break;
      }
    }
  }
  if (usage.positions() == 0) return absl::InvalidArgumentError("the prompt is empty");
  return usage;
}

absl::StatusOr<at::Tensor> SlotDecoder::BuildPrompt(PromptTemplate tmpl,
                                                    absl::Span<const ContextPart> context,
                                                    absl::Span<const int> prompt_ids,
                                                    PromptUsage* usage) const {
  ASSIGN_OR_RETURN(PromptUsage counted, PlanPrompt(tmpl, context, prompt_ids));
  return CatchTorch("building the prompt", [&]() -> absl::StatusOr<at::Tensor> {
    c10::InferenceMode guard;
    const Transformer& model = *transformer_;
    std::vector<at::Tensor> pieces;
    auto add_ids = [&](absl::Span<const int> ids) {
      if (ids.empty()) return;
      std::vector<int64_t> wide(ids.begin(), ids.end());
      pieces.push_back(model.Embed(at::tensor(wide, at::TensorOptions().dtype(at::kLong))));
    };
    for (const PromptPiece& piece :
         LayoutPrompt(tmpl, context.size(), prompt_ids, template_tokens())) {
      switch (piece.kind) {
        case PromptPiece::kTokens:
          add_ids(piece.ids);
          break;
        case PromptPiece::kSpecial:
          pieces.push_back(special_[static_cast<int>(piece.special)].unsqueeze(0));
          break;
        case PromptPiece::kContext: {
          const ContextPart& part = context[piece.context_index];
          if (part.slots.defined()) {
            pieces.push_back(part.slots.to(model.device(), model.dtype()));
          } else {
            add_ids(part.token_ids);
          }
          break;
        }
      }
    }
    if (usage != nullptr) *usage = counted;
    return at::cat(pieces, 0);
  });
}

}  // namespace icae
