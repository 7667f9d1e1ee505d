// The decoder's request path from raw bytes up to the prefill embeddings, as Generate runs it
// before any decoding: parse (ParseMessageBytes), convert and decode slot tensors
// (ToGenerateInput), validate against the demo model and the default limits, tokenize and embed
// (PrepareRequest). Every refusal is a client code; an accepted request fits the limits and its
// embeddings are finite.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>

#include "common/model/runtime_options.h"
#include "common/model/slot_decoder.h"
#include "common/serving/proto_bytes.h"
#include "decoder_service/engine/engine_options.h"
#include "decoder_service/engine/generate_input.h"
#include "decoder_service/engine/request_validator.h"
#include "decoder_service/server/request_convert.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Demo {
  std::unique_ptr<icae::SlotDecoder> model;
  icae::decoder::EngineOptions options;
  int64_t max_slot_elements = 0;
};

const Demo& LoadDemo() {
  static const Demo* demo = [] {
    at::set_num_threads(1);
    auto* d = new Demo;
    auto model = icae::SlotDecoder::Load(icae::fuzz::DemoDir("base"), icae::fuzz::DemoDir("icae"),
                                         icae::Runtime{});
    icae::fuzz::Require(model.ok(), "loading the demo model", model.status().ToString());
    d->model = *std::move(model);
    const int max_positions = d->model->config().max_position_embeddings;
    icae::fuzz::Require(d->options.Validate(max_positions).ok(), "default engine options");
    d->max_slot_elements = static_cast<int64_t>(d->options.ContextLimit(max_positions)) *
                           d->model->config().hidden_size;
    return d;
  }();
  return *demo;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace icae;
  fuzz::QuietProtobuf();
  const Demo& demo = LoadDemo();
  grpc::Slice slice(data, size);
  grpc::ByteBuffer buffer(&slice, 1);
  v1::GenerateRequest request;
  absl::Status parsed = ParseMessageBytes(buffer, &request);
  if (!parsed.ok()) {
    fuzz::Require(parsed.code() == absl::StatusCode::kInvalidArgument,
                  "a parse failure that is not INVALID_ARGUMENT", parsed.ToString());
    return 0;
  }
  decoder::GenerateInput input;
  absl::Status converted =
      decoder::ToGenerateInput(request, absl::InfiniteFuture(), demo.max_slot_elements, &input);
  if (!converted.ok()) {
    fuzz::RequireClientCode(converted, "ToGenerateInput");
    return 0;
  }
  absl::StatusOr<decoder::PreparedRequest> prepared =
      decoder::PrepareRequest(*demo.model, demo.options, std::move(input));
  if (!prepared.ok()) {
    fuzz::RequireClientCode(prepared.status(), "PrepareRequest");
    return 0;
  }
  const int limit = demo.options.ContextLimit(demo.model->config().max_position_embeddings);
  fuzz::Require(prepared->positions() < limit, "context at or past the limit");
  fuzz::Require(prepared->reserved_positions() <= limit, "reservation past the context limit");
  fuzz::Require(prepared->params.max_new_tokens <= demo.options.max_new_tokens,
                "max_new_tokens over the limit");
  fuzz::Require(!prepared->input.embeds.defined(), "embeddings built before admission");
  // What admission does next: an accepted request always embeds, to exactly its planned length.
  fuzz::Require(decoder::BuildEmbeds(*demo.model, *prepared).ok(), "BuildEmbeds failed");
  fuzz::Require(prepared->input.positions() == prepared->positions(), "embedded length");
  fuzz::Require(at::isfinite(prepared->input.embeds).all().item<bool>(), "non-finite embeddings");
  return 0;
}
