// Checks an EncodeRequest against the limits and the model, and turns every span into token ids.
// Each failure is InvalidArgument naming the field and the limit ("spans[3].token_ids[7] = 400
// is outside the vocabulary [0, 384)"), except text sent to a server without a tokenizer, which
// is FailedPrecondition. Thread-safe (no state).
#ifndef ICAE_ENCODER_SERVICE_ENGINE_REQUEST_VALIDATION_H_
#define ICAE_ENCODER_SERVICE_ENGINE_REQUEST_VALIDATION_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/io/tokenizer.h"
#include "encoder_service/engine/engine_types.h"

namespace icae::encoder {

struct RequestLimits {
  int max_spans = 64;
  int max_input_tokens = 5120;
  int vocab_size = 0;
  // Longest caller id echoed back (see encoder.proto Span.id).
  int max_span_id_bytes = 256;
};

// The token ids of each span, in order. Text is checked for UTF-8 and tokenized with BOS by
// `tokenizer` (null: text spans are refused).
absl::StatusOr<std::vector<std::vector<int>>> PrepareSpans(const EncodeRequest& request,
                                                           const RequestLimits& limits,
                                                           const Tokenizer* tokenizer);

// A slot dtype must be FLOAT32, BFLOAT16, FLOAT16 or INT8 (quantized per slot).
absl::Status ValidateSlotDType(DType dtype);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_REQUEST_VALIDATION_H_
