// Writes a Compress response into a grpc::ByteBuffer without copying the slot payloads: each
// span's tensor bytes become a slice over the engine's immutable buffer (shared with the slot
// cache, kept alive by the slice), and only the small fields around them are serialized. The
// bytes parse as exactly the CompressResponse ToProto builds (tests/encoder_service/
// response_writer_test.cc). Protobuf parsers accept a message's fields in any order, which lets
// each tensor's data field come last.
//
// Copies of a slot payload between the model and the socket: the executor's conversion into the
// span buffer (dtype or int8, common/codec) and gRPC's own write; none here.
#ifndef ICAE_ENCODER_SERVICE_SERVER_RESPONSE_WRITER_H_
#define ICAE_ENCODER_SERVICE_SERVER_RESPONSE_WRITER_H_

#include <grpcpp/support/byte_buffer.h>

#include "encoder_service/engine/engine_types.h"

namespace icae::encoder {

// `handles`: as in ToProto. Returns the payload bytes passed by reference (for tests and stats).
int64_t WriteCompressResponse(const EncodeResult& result, const EngineModelInfo& info,
                              bool handles, grpc::ByteBuffer* out);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_RESPONSE_WRITER_H_
