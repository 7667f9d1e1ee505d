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
inline constexpr v1::DataType kSlotDataTypes[] = {v1::FLOAT32, v1::BFLOAT16, v1::FLOAT16};

// The engine's request. InvalidArgument names slot_dtype when it is not FLOAT32, BFLOAT16,
// FLOAT16 or unset; span content is checked by the engine.
absl::StatusOr<EncodeRequest> FromProto(const v1::CompressRequest& request, absl::Time deadline);

// Fills `response` (one CompressedSpan per span, in order, plus totals).
void ToProto(const EncodeResult& result, const EngineModelInfo& info,
             v1::CompressResponse* response);

struct ServerInfo {
  std::string version;
  int64_t max_message_bytes = 0;
};
void FillEncoderInfo(const EngineModelInfo& model, const EngineOptions& options,
                     const ServerInfo& server, v1::EncoderInfo* info);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_PROTO_CONVERT_H_
