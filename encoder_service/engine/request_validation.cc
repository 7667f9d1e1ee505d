#include "encoder_service/engine/request_validation.h"

#include "absl/strings/str_cat.h"
#include "common/io/utf8.h"

namespace icae::encoder {
namespace {

absl::Status CheckLength(size_t tokens, int limit, absl::string_view field) {
  if (tokens > static_cast<size_t>(limit)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", tokens, " tokens exceed max_input_tokens ", limit));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSlotDType(DType dtype) {
  if (!IsFloating(dtype) && dtype != DType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slot_dtype: ", DTypeName(dtype), " is not a slot dtype (FLOAT32, BFLOAT16, FLOAT16 or INT8)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<int>>> PrepareSpans(const EncodeRequest& request,
                                                           const RequestLimits& limits,
                                                           const Tokenizer* tokenizer) {
  if (request.spans.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spans: the request has no spans (1..", limits.max_spans, " allowed)"));
  }
  if (request.spans.size() > static_cast<size_t>(limits.max_spans)) {
    return absl::InvalidArgumentError(absl::StrCat("spans: ", request.spans.size(),
                                                   " spans exceed max_spans ", limits.max_spans));
  }
  if (request.slot_dtype.has_value()) {
    if (absl::Status s = ValidateSlotDType(*request.slot_dtype); !s.ok()) return s;
  }
  std::vector<std::vector<int>> out;
  out.reserve(request.spans.size());
  for (size_t i = 0; i < request.spans.size(); ++i) {
    const SpanInput& span = request.spans[i];
    const std::string field = absl::StrCat("spans[", i, "]");
    if (span.id.size() > static_cast<size_t>(limits.max_span_id_bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".id: ", span.id.size(), " bytes exceed the limit of ", limits.max_span_id_bytes));
    }
    switch (span.kind) {
      case SpanInput::Kind::kUnset:
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": empty span (neither text nor token_ids is set)"));
      case SpanInput::Kind::kText: {
        const std::string text_field = absl::StrCat(field, ".text");
        if (span.text.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(text_field, ": empty span"));
        }
        if (!IsValidUtf8(span.text)) {
          return absl::InvalidArgumentError(absl::StrCat(text_field, ": not valid UTF-8"));
        }
        if (tokenizer == nullptr) {
          return absl::FailedPreconditionError(
              absl::StrCat(text_field,
                           ": this server has no tokenizer (no tokenizer.model in "
                           "the model directory); send token_ids instead"));
        }
        // Before any work that grows with the text (tokenizing costs ~250 bytes of memory per
        // input byte; the UTF-8 check above allocates nothing): a text longer than this has more
        // tokens than the limit.
        const int64_t max_bytes =
            static_cast<int64_t>(limits.max_input_tokens) * tokenizer->max_piece_bytes();
        if (static_cast<int64_t>(span.text.size()) > max_bytes) {
          return absl::InvalidArgumentError(absl::StrCat(
              text_field, ": ", span.text.size(), " bytes cannot fit max_input_tokens ",
              limits.max_input_tokens, " (at most ", tokenizer->max_piece_bytes(),
              " bytes per token: ", max_bytes, " bytes)"));
        }
        absl::StatusOr<std::vector<int>> ids = tokenizer->Encode(span.text, /*add_bos=*/true);
        if (!ids.ok()) {
          return absl::Status(ids.status().code(),
                              absl::StrCat(text_field, ": ", ids.status().message()));
        }
        if (absl::Status s = CheckLength(ids->size(), limits.max_input_tokens, text_field);
            !s.ok()) {
          return s;
        }
        out.push_back(*std::move(ids));
        break;
      }
      case SpanInput::Kind::kTokenIds: {
        const std::string ids_field = absl::StrCat(field, ".token_ids");
        if (span.token_ids.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(ids_field, ": empty span"));
        }
        if (absl::Status s = CheckLength(span.token_ids.size(), limits.max_input_tokens, ids_field);
            !s.ok()) {
          return s;
        }
        for (size_t j = 0; j < span.token_ids.size(); ++j) {
          const int id = span.token_ids[j];
          if (id < 0 || id >= limits.vocab_size) {
            return absl::InvalidArgumentError(absl::StrCat(ids_field, "[", j, "] = ", id,
                                                           " is outside the vocabulary [0, ",
                                                           limits.vocab_size, ")"));
          }
        }
        out.push_back(span.token_ids);
        break;
      }
    }
  }
  return out;
}

}  // namespace icae::encoder
