#include "common/serving/proto_bytes.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "absl/strings/str_cat.h"

namespace icae {

absl::Status ParseMessageBytes(const grpc::ByteBuffer& bytes, google::protobuf::Message* out) {
  grpc::ByteBuffer copy(bytes);  // Shares the slices; Deserialize consumes its argument.
  grpc::Status status =
      grpc::SerializationTraits<google::protobuf::Message>::Deserialize(&copy, out);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("request: not a valid ", out->GetDescriptor()->full_name(),
                   " (malformed bytes, or a string field that is not UTF-8)"));
}

absl::Status SerializeMessageBytes(const google::protobuf::Message& message,
                                   grpc::ByteBuffer* out) {
  out->Clear();  // gRPC's writer requires an empty buffer (it asserts).
  bool own_buffer = false;
  grpc::Status status =
      grpc::SerializationTraits<google::protobuf::Message>::Serialize(message, out, &own_buffer);
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cannot serialize the response: ", status.error_message()));
}

}  // namespace icae
