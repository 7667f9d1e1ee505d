// Typed client of icae.v1.Encoder (blocking calls). Thread-safe; cheap to copy.
//
//   ASSIGN_OR_RETURN(auto conn, Connection::Create(options));
//   EncoderClient encoder(conn);
//   v1::CompressRequest request;
//   request.add_spans()->set_text("a retrieved document ...");
//   ASSIGN_OR_RETURN(v1::CompressResponse response, encoder.Compress(request));
#ifndef ICAE_COMMON_CLIENT_ENCODER_CLIENT_H_
#define ICAE_COMMON_CLIENT_ENCODER_CLIENT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/client/client_options.h"
#include "icae/v1/encoder.grpc.pb.h"

namespace icae {

class EncoderClient {
 public:
  explicit EncoderClient(std::shared_ptr<const Connection> connection);
  static absl::StatusOr<EncoderClient> Create(const ClientOptions& options);

  // Errors are the server's gRPC status mapped by FromGrpcStatus. `timeout` zero = the default.
  absl::StatusOr<v1::CompressResponse> Compress(
      const v1::CompressRequest& request, absl::Duration timeout = absl::ZeroDuration()) const;
  absl::StatusOr<v1::EncoderInfo> GetInfo(absl::Duration timeout = absl::ZeroDuration()) const;

  const Connection& connection() const { return *connection_; }

 private:
  std::shared_ptr<const Connection> connection_;
  std::shared_ptr<v1::Encoder::Stub> stub_;
};

}  // namespace icae

#endif  // ICAE_COMMON_CLIENT_ENCODER_CLIENT_H_
