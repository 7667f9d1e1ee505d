// Per-request generation parameters and finish reasons. No LibTorch (clients use them too).
#ifndef ICAE_COMMON_MODEL_GENERATION_PARAMS_H_
#define ICAE_COMMON_MODEL_GENERATION_PARAMS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model/sampler.h"

namespace icae {

enum class FinishReason { kNone, kEos, kLength, kStop, kCancelled };
const char* FinishReasonName(FinishReason reason);

struct GenerationParams {
  int max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // Needs a tokenizer.

  absl::Status Validate(bool has_tokenizer) const;
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_GENERATION_PARAMS_H_
