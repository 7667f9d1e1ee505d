#include "common/model/generation_params.h"

#include "absl/strings/str_cat.h"

namespace icae {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "?";
}

absl::Status GenerationParams::Validate(bool has_tokenizer) const {
  if (max_new_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens ", max_new_tokens, " must be positive"));
  }
  if (!stop.empty() && !has_tokenizer) {
    return absl::FailedPreconditionError("stop strings need the model's tokenizer.model");
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) return absl::InvalidArgumentError(absl::StrCat("stop[", i, "] is empty"));
  }
  return sampling.Validate();
}

}  // namespace icae
