#include "common/client/handle_retry.h"

#include "common/base/status_macros.h"

namespace icae {

absl::StatusOr<v1::GenerateResponse> GenerateWithHandles(
    const EncoderRouter& encoder, const DecoderClient& decoder, v1::GenerateRequest request,
    const std::vector<std::optional<v1::Span>>& sources, int max_retries) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<v1::GenerateResponse> response = decoder.Generate(request);
    if (response.ok() || response.status().code() != absl::StatusCode::kNotFound ||
        attempt >= max_retries) {
      return response;
    }
    v1::CompressRequest compress;
    compress.set_return_handles(true);
    std::vector<int> parts;
    for (int i = 0; i < request.context_size(); ++i) {
      if (request.context(i).part_case() != v1::ContextPart::kHandle ||
          static_cast<size_t>(i) >= sources.size() || !sources[i].has_value()) {
        continue;
      }
      *compress.add_spans() = *sources[i];
      compress.set_slot_dtype(request.context(i).handle().dtype());
      parts.push_back(i);
    }
    if (parts.empty()) return response;
    ASSIGN_OR_RETURN(v1::CompressResponse compressed, encoder.Compress(compress));
    if (compressed.spans_size() != static_cast<int>(parts.size())) {
      return absl::DataLossError("the encoder did not return one span per document");
    }
    for (size_t k = 0; k < parts.size(); ++k) {
      v1::ContextPart* part = request.mutable_context(parts[k]);
      v1::CompressedSpan* span = compressed.mutable_spans(static_cast<int>(k));
      if (span->has_handle()) {
        *part->mutable_handle() = std::move(*span->mutable_handle());
      } else {
        *part->mutable_slots() = std::move(*span->mutable_slots());
      }
    }
  }
}

}  // namespace icae
