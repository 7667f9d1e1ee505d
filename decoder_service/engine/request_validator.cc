#include "decoder_service/engine/request_validator.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/io/utf8.h"
#include "common/model/torch_status.h"

namespace icae::decoder {
namespace {

absl::Status CheckSlots(const SlotDecoder& model, const ContextInput& part, size_t index) {
  const std::string field = absl::StrCat("context[", index, "].slots");
  const AcceptedEncoder* encoder = model.FindEncoder(part.encoder_id);
  if (encoder == nullptr) {
    std::vector<std::string> ids;
    for (const AcceptedEncoder& e : model.accepted_encoders()) ids.push_back(e.encoder_id);
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": made by encoder_id '", ClipForMessage(part.encoder_id),
                     "' but this decoder accepts '", absl::StrJoin(ids, "', '"),
                     "' (its base model and adapters)"));
  }
  if (part.slot_kind != encoder->kind) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": ", SlotKindName(part.slot_kind), " slots, but encoder_id '", encoder->encoder_id,
        "' makes ", SlotKindName(encoder->kind), " slots"));
  }
  ContextPart shaped;
  shaped.slots = part.slots;
  shaped.kind = part.slot_kind;
  RETURN_IF_ERROR(CheckSlotShape(model.config(), shaped, field));
  const at::Tensor& slots = part.slots;
  const int64_t num_slots = shaped.positions();
  ASSIGN_OR_RETURN(bool finite, CatchTorch("checking slots", [&]() -> absl::StatusOr<bool> {
                     return at::isfinite(slots).all().item<bool>();
                   }));
  if (!finite) return absl::InvalidArgumentError(absl::StrCat(field, ": contains NaN or Inf"));
  // The metadata beside the tensor: optional, but never contradicting it.
  const std::string meta = absl::StrCat("context[", index, "].");
  if (part.source_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(meta, "source_tokens: ", part.source_tokens, " is negative"));
  }
  const int mem_size = encoder->mem_size;
  if (part.mem_size < 0 || (part.mem_size != 0 && part.mem_size != mem_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        meta, "mem_size: ", part.mem_size, ", but its encoder's adapter has mem_size ", mem_size));
  }
  if (part.num_segments < 0 ||
      (part.num_segments != 0 && static_cast<int64_t>(part.num_segments) * mem_size != num_slots)) {
    return absl::InvalidArgumentError(absl::StrCat(meta, "num_segments: ", part.num_segments,
                                                   " x mem_size ", mem_size, " is not the ",
                                                   num_slots, " slots sent"));
  }
  return absl::OkStatus();
}

absl::Status CheckStops(const std::vector<std::string>& stop) {
  if (static_cast<int>(stop.size()) > kMaxStopStrings) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop: ", stop.size(), " strings, at most ", kMaxStopStrings));
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty() || static_cast<int>(stop[i].size()) > kMaxStopBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "]: ", stop[i].size(), " bytes, must be 1..", kMaxStopBytes));
    }
  }
  return absl::OkStatus();
}

// A text of more than room * (longest piece) bytes has more than `room` tokens (Tokenizer::
// max_piece_bytes): refused before tokenizing, which costs memory in proportion to the bytes.
absl::Status CheckTextFits(const SlotDecoder& model, absl::string_view text, int64_t room,
                           absl::string_view field, int context_limit) {
  if (model.tokenizer() == nullptr) return absl::OkStatus();  // Tokenize() refuses it.
  const int64_t max_bytes = std::max<int64_t>(0, room) * model.tokenizer()->max_piece_bytes();
  if (static_cast<int64_t>(text.size()) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", text.size(), " bytes cannot fit the ", std::max<int64_t>(0, room),
                     " positions left within --max_context_tokens ", context_limit, " (at most ",
                     model.tokenizer()->max_piece_bytes(), " bytes per token)"));
  }
  return absl::OkStatus();
}

// The context prefix a request may share (PreparedRequest::prefix_*): none when the cache is off,
// the request opts out, or the prefix's KV alone would not fit the cache.
void SetPrefix(const SlotDecoder& model, const EngineOptions& options, bool skip,
               PreparedRequest* prepared) {
  if (skip || options.prefix_cache_bytes <= 0) return;
  const std::vector<PromptPiece> layout = LayoutPrompt(
      prepared->tmpl, prepared->parts.size(), prepared->prompt_ids, model.template_tokens());
  const size_t pieces = ContextPrefixPieces(layout);
  PrefixKey key;
  for (size_t i = 0; i < pieces; ++i) {
    const PromptPiece& piece = layout[i];
    switch (piece.kind) {
      case PromptPiece::kTokens:
        key.ids.insert(key.ids.end(), piece.ids.begin(), piece.ids.end());
        key.positions += static_cast<int64_t>(piece.ids.size());
        break;
      case PromptPiece::kSpecial:
        key.ids.push_back(-1 - static_cast<int>(piece.special));
        key.positions += 1;
        break;
      case PromptPiece::kContext: {
        const ContextPart& part = prepared->parts[piece.context_index];
        if (part.slots.defined()) {
          key.ids.push_back(PrefixKey::kSlotsMarker);
          key.slots.push_back(part.slots.to(at::kCPU).contiguous());
          key.positions += part.positions();
        } else {
          key.ids.insert(key.ids.end(), part.token_ids.begin(), part.token_ids.end());
          key.positions += static_cast<int64_t>(part.token_ids.size());
        }
        break;
      }
    }
  }
  if (key.positions == 0) return;
  const int64_t kv_bytes =
      KVCache::BytesPerPosition(model.config(), model.transformer().dtype()) * key.positions;
  if (kv_bytes + key.bytes() > options.prefix_cache_bytes) return;
  key.Seal();
  prepared->prefix_positions = key.positions;
  prepared->prefix_key = std::move(key);
}

// The request's generation parameters, max_new_tokens 0 resolved to the engine's default.
absl::StatusOr<GenerationParams> CheckParams(const SlotDecoder& model, const EngineOptions& options,
                                             GenerationParams params) {
  if (params.max_new_tokens == 0) params.max_new_tokens = options.max_new_tokens;
  if (params.max_new_tokens < 0 || params.max_new_tokens > options.max_new_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens ", params.max_new_tokens,
                                                   " must be in [1, --max_new_tokens ",
                                                   options.max_new_tokens, "] (0 = default)"));
  }
  RETURN_IF_ERROR(CheckStops(params.stop));
  RETURN_IF_ERROR(params.Validate(model.tokenizer() != nullptr));
  return params;
}

// What every request goes through once its template, context parts and prompt ids are in the
// model's form (in `prepared`, with `params` checked): the layout planned (its errors), the
// context and KV limits, and the prefix it may share.
absl::StatusOr<PreparedRequest> PlanRequest(const SlotDecoder& model, const EngineOptions& options,
                                            PreparedRequest prepared, GenerationParams params,
                                            bool skip_prefix_cache) {
  const int context_limit = options.ContextLimit(model.config().max_position_embeddings);
  ASSIGN_OR_RETURN(PromptUsage usage,
                   model.PlanPrompt(prepared.tmpl, prepared.parts, prepared.prompt_ids));
  prepared.slot_tokens = usage.slot_tokens;
  prepared.prompt_tokens = usage.text_tokens;
  prepared.context_positions = usage.positions();
  const int64_t positions = prepared.positions();
  if (positions == 0) {
    return absl::InvalidArgumentError(
        "the request has no context and no prompt: nothing to generate from");
  }
  if (positions >= context_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context: ", positions, " positions (", usage.slot_tokens, " slots, ", usage.text_tokens,
        " text, template and prompt tokens) leave no room to generate within "
        "--max_context_tokens ",
        context_limit));
  }
  params.max_new_tokens =
      static_cast<int>(std::min<int64_t>(params.max_new_tokens, context_limit - positions));
  prepared.params = std::move(params);
  if (prepared.reserved_positions() > options.max_kv_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("request needs ", prepared.reserved_positions(), " KV-cache positions (",
                     positions, " context + ", prepared.params.max_new_tokens,
                     " max_new_tokens); --max_kv_tokens is ", options.max_kv_tokens));
  }
  RETURN_IF_ERROR(CatchTorch("keying the context prefix", [&]() -> absl::Status {
    SetPrefix(model, options, skip_prefix_cache, &prepared);
    return absl::OkStatus();
  }));
  // A shared prefix ends a block of its own, so sharing may cost a block more: a request that
  // would then not fit the pool does without sharing (and always fits: reserved <= the limit).
  if (KvPositionsNeeded(prepared, prepared.reserved_positions(), false,
                        options.kv_block_tokens) > options.KvLimit()) {
    prepared.prefix_positions = 0;
    prepared.prefix_key = PrefixKey();
  }
  return prepared;
}

}  // namespace

absl::StatusOr<PreparedRequest> PrepareRequest(const SlotDecoder& model,
                                               const EngineOptions& options, GenerateInput input) {
  const ModelConfig& config = model.config();
  const int context_limit = options.ContextLimit(config.max_position_embeddings);
  if (static_cast<int>(input.context.size()) > kMaxContextParts) {
    return absl::InvalidArgumentError(
        absl::StrCat("context: ", input.context.size(), " parts, at most ", kMaxContextParts));
  }
  ASSIGN_OR_RETURN(GenerationParams params, CheckParams(model, options, std::move(input.params)));

  const bool has_prompt = !input.prompt.empty() || !input.prompt_ids.empty();
  if (input.context.empty() && !has_prompt) {
    return absl::InvalidArgumentError(
        "the request has no context and no prompt: nothing to generate from");
  }
  const std::string template_name = !input.template_name.empty() ? input.template_name
                                    : has_prompt                 ? "icae-v2-instruct"
                                                                 : "ae";
  ASSIGN_OR_RETURN(PromptTemplate tmpl, ParsePromptTemplate(template_name));

  // Context parts: slots checked, text tokenized. A first bound on the length stops absurd
  // requests before any embedding is built.
  PreparedRequest prepared;
  std::vector<ContextPart> parts;
  parts.reserve(input.context.size());
  int64_t context_positions = 0;
  int64_t uncompressed = 0;  // Tokens the context had before compression.
  for (size_t i = 0; i < input.context.size(); ++i) {
    ContextInput& in = input.context[i];
    ContextPart part;
    switch (in.kind) {
      case ContextInput::Kind::kSlots:
        RETURN_IF_ERROR(CheckSlots(model, in, i));
        part.slots = std::move(in.slots);
        part.kind = in.slot_kind;
        context_positions += part.positions();
        uncompressed += in.source_tokens;  // >= 0 (CheckSlots).
        break;
      case ContextInput::Kind::kText: {
        RETURN_IF_ERROR(CheckTextFits(model, in.text, context_limit - context_positions,
                                      absl::StrCat("context[", i, "].text"), context_limit));
        absl::StatusOr<std::vector<int>> ids = model.Tokenize(in.text);
        if (!ids.ok()) {
          return absl::Status(ids.status().code(),
                              absl::StrCat("context[", i, "].text: ", ids.status().message()));
        }
        part.token_ids = *std::move(ids);
        break;
      }
      case ContextInput::Kind::kTokenIds:
        part.token_ids = std::move(in.token_ids);
        break;
    }
    if (!part.slots.defined()) {
      context_positions += static_cast<int64_t>(part.token_ids.size());
      uncompressed += static_cast<int64_t>(part.token_ids.size());
    }
    if (context_positions >= context_limit) {
      return absl::InvalidArgumentError(absl::StrCat("context: more than ", context_positions,
                                                     " positions; --max_context_tokens is ",
                                                     context_limit));
    }
    parts.push_back(std::move(part));
  }
  // Summed in 64 bits and saturated: what callers claim in source_tokens never wraps the usage.
  prepared.uncompressed_context_tokens =
      static_cast<int>(std::min<int64_t>(uncompressed, std::numeric_limits<int32_t>::max()));

  std::vector<int> prompt_ids = std::move(input.prompt_ids);
  // The prompt's length is checked before it is tokenized or embedded.
  if (tmpl != PromptTemplate::kAe &&
      context_positions + static_cast<int64_t>(prompt_ids.size()) >= context_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_ids: ", prompt_ids.size(), " ids after ", context_positions,
        " context positions leave no room within --max_context_tokens ", context_limit));
  }
  if (prompt_ids.empty() && !input.prompt.empty() && tmpl != PromptTemplate::kAe) {
    RETURN_IF_ERROR(CheckTextFits(model, input.prompt, context_limit - context_positions, "prompt",
                                  context_limit));
    absl::StatusOr<std::vector<int>> ids = model.Tokenize(input.prompt);
    if (!ids.ok()) {
      return absl::Status(ids.status().code(), absl::StrCat("prompt: ", ids.status().message()));
    }
    prompt_ids = *std::move(ids);
  }
  if (tmpl == PromptTemplate::kAe) prompt_ids.clear();

  prepared.ignore_eos = input.ignore_eos;
  prepared.deadline = input.deadline;
  prepared.tmpl = tmpl;
  prepared.parts = std::move(parts);
  prepared.prompt_ids = std::move(prompt_ids);
  return PlanRequest(model, options, std::move(prepared), std::move(params),
                     input.skip_prefix_cache);
}

absl::StatusOr<PreparedRequest> PrepareLocalRequest(const SlotDecoder& model,
                                                    const EngineOptions& options,
                                                    LocalInput input) {
  ASSIGN_OR_RETURN(GenerationParams params, CheckParams(model, options, std::move(input.params)));
  PreparedRequest prepared;
  int64_t uncompressed = 0;  // Text tokens: a local slot tensor does not say its span's length.
  for (const ContextPart& part : input.parts) {
    if (!part.slots.defined()) uncompressed += static_cast<int64_t>(part.token_ids.size());
  }
  prepared.uncompressed_context_tokens =
      static_cast<int>(std::min<int64_t>(uncompressed, std::numeric_limits<int32_t>::max()));
  prepared.ignore_eos = input.ignore_eos;
  prepared.keep_step_logits = input.keep_step_logits;
  prepared.tmpl = input.tmpl;
  prepared.parts = std::move(input.parts);
  prepared.prompt_ids = std::move(input.prompt_ids);
  if (prepared.tmpl == PromptTemplate::kAe) prepared.prompt_ids.clear();
  return PlanRequest(model, options, std::move(prepared), std::move(params),
                     input.skip_prefix_cache);
}

int64_t KvPositionsNeeded(const PreparedRequest& p, int64_t upto, bool prefix_hit, int64_t block) {
  if (p.prefix_positions == 0) return RoundUpToBlock(upto, block);
  const int64_t own = RoundUpToBlock(upto - p.prefix_positions, block);
  return prefix_hit ? own : RoundUpToBlock(p.prefix_positions, block) + own;
}

absl::Status BuildEmbeds(const SlotDecoder& model, PreparedRequest& prepared) {
  ASSIGN_OR_RETURN(prepared.input,
                   model.BuildPrompt(prepared.tmpl, prepared.parts, prepared.prompt_ids));
  if (prepared.input.positions() != prepared.context_positions) {
    return absl::InternalError(absl::StrCat("the prompt has ", prepared.input.positions(),
                                            " positions, planned ", prepared.context_positions));
  }
  return absl::OkStatus();
}

}  // namespace icae::decoder
