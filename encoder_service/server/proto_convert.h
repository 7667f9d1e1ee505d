// icae.v1 messages <-> engine structs for the Encoder service. No LibTorch: slot bytes are
// already in their wire dtype when the engine returns them. Thread-safe (no state).
#ifndef ICAE_ENCODER_SERVICE_SERVER_PROTO_CONVERT_H_
#define ICAE_ENCODER_SERVICE_SERVER_PROTO_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "encoder_service/engine/engine_options.h"
#include "encoder_service/engine/engine_types.h"
#include "icae/v1/encoder.pb.h"

namespace icae::encoder {

// The slot dtypes a request may ask for, in GetInfo order.
inline constexpr v1::DataType kSlotDataTypes[] = {v1::FLOAT32, v1::BFLOAT16, v1::FLOAT16,
                                                  v1::INT8};

// The engine's request. InvalidArgument names slot_dtype when it is not FLOAT32, BFLOAT16,
// FLOAT16, INT8 or unset; span content is checked by the engine.
absl::StatusOr<EncodeRequest> FromProto(const v1::CompressRequest& request, absl::Time deadline);

// Fills `response` (one CompressedSpan per span, in order, plus totals). With `handles`, a span
// the store holds (SpanResult.stored) gets a SlotHandle instead of its slots.
// `with_data` false leaves the tensors' data empty (response_writer.h sends it by reference).
void ToProto(const EncodeResult& result, const EngineModelInfo& info, bool handles,
             v1::CompressResponse* response, bool with_data = true);

// A span's slots as the wire (and the slot store) carry them: the tensor (with INT8 scales) and
// its metadata. Copies the bytes once.
// The wire name of a slot kind.
v1::SlotKind ToProtoSlotKind(SlotKind kind);

void FillMemorySlots(const SlotBlock& slots, const EngineModelInfo& info, int tokens, int segments,
                     v1::MemorySlots* out, bool with_data = true);

struct ServerInfo {
  std::string version;
  int64_t max_message_bytes = 0;
  // The shared slot store's time to live, seconds; 0: no store.
  int64_t slot_store_ttl_seconds = 0;
  bool slot_store = false;
};
void FillEncoderInfo(const EngineModelInfo& model, const EngineOptions& options,
                     const ServerInfo& server, v1::EncoderInfo* info);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_PROTO_CONVERT_H_
