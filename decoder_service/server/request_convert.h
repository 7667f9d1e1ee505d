// The one place where the Decoder's protobuf messages meet the engine's types: a GenerateRequest
// decoded (slot tensors validated by the codec) and enqueued, engine results written back as
// protobuf, and the DecoderInfo of a loaded model. No LibTorch in this header.
#ifndef ICAE_DECODER_SERVICE_SERVER_REQUEST_CONVERT_H_
#define ICAE_DECODER_SERVICE_SERVER_REQUEST_CONVERT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/generation_params.h"
#include "decoder_service/engine/engine.h"
#include "decoder_service/engine/generation_event.h"
#include "icae/v1/decoder.pb.h"

namespace icae {
class SlotDecoder;
}

namespace icae::decoder {

class SlotHandleFetcher;

// Decodes `request` into the engine's input. A slot tensor is rejected with INVALID_ARGUMENT
// (naming context[i]) before use when its bytes do not match its dtype and shape, when it has
// more than `max_slot_elements` elements or a kind other than EMBEDDING; the rest is checked by
// the engine (PrepareRequest). Handle parts are fetched through `handles` (one round trip) and
// then checked the same way; without a fetcher they are FAILED_PRECONDITION (see
// slot_handles.h for the fetch's codes).
absl::Status ToGenerateInput(const v1::GenerateRequest& request, absl::Time deadline,
                             int64_t max_slot_elements, GenerateInput* out,
                             const SlotHandleFetcher* handles = nullptr);

// ToGenerateInput, then engine.Enqueue (see there for the codes).
absl::StatusOr<uint64_t> EnqueueRequest(Engine& engine, const v1::GenerateRequest& request,
                                        absl::Time deadline, int64_t max_slot_elements,
                                        const SlotHandleFetcher* handles, GenerationSink sink);

v1::FinishReason ToProtoFinishReason(FinishReason reason);
void ToProtoUsage(const GenerationUsage& usage, v1::GenerateUsage* out);

// GetInfo's answer for `model` served with `options`.
struct ServerDescription {
  std::string model_dir;
  std::string device;
  std::string dtype;
  std::string version;
  int64_t max_message_bytes = 0;
  bool slot_store = false;
};
v1::DecoderInfo MakeDecoderInfo(const SlotDecoder& model, const EngineOptions& options,
                                const ServerDescription& server);

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_SERVER_REQUEST_CONVERT_H_
