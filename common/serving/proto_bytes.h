// Messages to and from gRPC's raw bytes, for handlers registered raw (WithRawCallbackMethod_*):
// such a handler parses the request itself, so a request protobuf refuses (malformed bytes, or a
// proto3 string holding invalid UTF-8) becomes INVALID_ARGUMENT counted by the handler's RpcScope,
// instead of the bare status gRPC's generated code would send without the handler ever running.
#ifndef ICAE_COMMON_SERVING_PROTO_BYTES_H_
#define ICAE_COMMON_SERVING_PROTO_BYTES_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"

namespace icae {

// Parses `bytes` into `out`. InvalidArgument names the message type.
absl::Status ParseMessageBytes(const grpc::ByteBuffer& bytes, google::protobuf::Message* out);

// Serializes `message` into `out` (replacing what it held). Internal on failure.
absl::Status SerializeMessageBytes(const google::protobuf::Message& message, grpc::ByteBuffer* out);

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_PROTO_BYTES_H_
