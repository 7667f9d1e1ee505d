// The encoder's request path from raw bytes, as the Compress handler runs it before any model
// work: parse (ParseCompressRequest), convert (FromProto), check and tokenize (PrepareSpans with
// the demo tokenizer and the server's default limits). Every refusal is a client code; accepted
// spans respect the limits.
#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>

#include "common/io/tokenizer.h"
#include "encoder_service/engine/request_validation.h"
#include "encoder_service/server/proto_convert.h"
#include "encoder_service/server/request_parser.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace icae;
  fuzz::QuietProtobuf();
  grpc::Slice slice(data, size);
  grpc::ByteBuffer buffer(&slice, 1);
  v1::CompressRequest request;
  absl::Status parsed = encoder::ParseCompressRequest(buffer, &request);
  if (!parsed.ok()) {
    fuzz::Require(parsed.code() == absl::StatusCode::kInvalidArgument,
                  "a parse failure that is not INVALID_ARGUMENT", parsed.ToString());
    return 0;
  }
  absl::StatusOr<encoder::EncodeRequest> converted =
      encoder::FromProto(request, absl::InfiniteFuture());
  if (!converted.ok()) {
    fuzz::RequireClientCode(converted.status(), "FromProto");
    return 0;
  }
  const Tokenizer& tokenizer = fuzz::DemoTokenizer();
  encoder::RequestLimits limits;
  limits.vocab_size = tokenizer.vocab_size();
  absl::StatusOr<std::vector<std::vector<int>>> spans =
      encoder::PrepareSpans(*converted, limits, &tokenizer);
  if (!spans.ok()) {
    fuzz::RequireClientCode(spans.status(), "PrepareSpans");
    return 0;
  }
  fuzz::Require(static_cast<int>(spans->size()) <= limits.max_spans, "more spans than the limit");
  for (const std::vector<int>& ids : *spans) {
    fuzz::Require(static_cast<int>(ids.size()) <= limits.max_input_tokens, "span over the limit");
    for (int id : ids) fuzz::Require(id >= 0 && id < limits.vocab_size, "id outside the vocab");
  }
  return 0;
}
