// Wire bytes -> CompressRequest for the raw Compress handler (the response: response_writer.h). Thread-safe (no state).
#ifndef ICAE_ENCODER_SERVICE_SERVER_REQUEST_PARSER_H_
#define ICAE_ENCODER_SERVICE_SERVER_REQUEST_PARSER_H_

#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "icae/v1/encoder.pb.h"

namespace icae::encoder {

// Parses `buffer` into `out`. Protobuf refuses a message whose proto3 strings are not UTF-8; that
// becomes InvalidArgument naming the field ("spans[2].text: not valid UTF-8"), any other parse
// failure InvalidArgument "request: not a valid icae.v1.CompressRequest".
absl::Status ParseCompressRequest(const grpc::ByteBuffer& buffer, v1::CompressRequest* out);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_REQUEST_PARSER_H_
