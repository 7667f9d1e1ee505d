// Typed client of icae.v1.Decoder (blocking calls). Thread-safe; cheap to copy.
//
//   DecoderClient decoder(conn);
//   absl::Status s = decoder.GenerateStream(request, [](const v1::GenerateChunk& chunk) {
//     std::cout << chunk.text() << std::flush;
//     return true;  // false cancels the call
//   });
#ifndef ICAE_COMMON_CLIENT_DECODER_CLIENT_H_
#define ICAE_COMMON_CLIENT_DECODER_CLIENT_H_

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/client/client_options.h"
#include "icae/v1/decoder.grpc.pb.h"

namespace icae {

class DecoderClient {
 public:
  explicit DecoderClient(std::shared_ptr<const Connection> connection);
  static absl::StatusOr<DecoderClient> Create(const ClientOptions& options);

  // Errors are the server's gRPC status mapped by FromGrpcStatus. `timeout` zero = the default.
  absl::StatusOr<v1::GenerateResponse> Generate(
      const v1::GenerateRequest& request, absl::Duration timeout = absl::ZeroDuration()) const;

  // Calls `on_chunk` for every chunk, in order, on the calling thread. When it returns false the
  // call is cancelled and GenerateStream returns CANCELLED. Returns the final status.
  absl::Status GenerateStream(const v1::GenerateRequest& request,
                              const std::function<bool(const v1::GenerateChunk&)>& on_chunk,
                              absl::Duration timeout = absl::ZeroDuration()) const;

  absl::StatusOr<v1::DecoderInfo> GetInfo(absl::Duration timeout = absl::ZeroDuration()) const;

  const Connection& connection() const { return *connection_; }

 private:
  std::shared_ptr<const Connection> connection_;
  std::shared_ptr<v1::Decoder::Stub> stub_;
};

}  // namespace icae

#endif  // ICAE_COMMON_CLIENT_DECODER_CLIENT_H_
