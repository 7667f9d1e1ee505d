#include "common/client/encoder_client.h"

#include "common/base/status_macros.h"
#include "common/serving/status_grpc.h"

namespace icae {

EncoderClient::EncoderClient(std::shared_ptr<const Connection> connection)
    : connection_(std::move(connection)), stub_(v1::Encoder::NewStub(connection_->channel())) {}

absl::StatusOr<EncoderClient> EncoderClient::Create(const ClientOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Connection> connection, Connection::Create(options));
  return EncoderClient(std::move(connection));
}

absl::StatusOr<v1::CompressResponse> EncoderClient::Compress(const v1::CompressRequest& request,
                                                             absl::Duration timeout) const {
  grpc::ClientContext context;
  connection_->PrepareContext(&context, timeout);
  v1::CompressResponse response;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->Compress(&context, request, &response)));
  return response;
}

absl::StatusOr<v1::EncoderInfo> EncoderClient::GetInfo(absl::Duration timeout) const {
  grpc::ClientContext context;
  connection_->PrepareContext(&context, timeout);
  v1::EncoderInfo info;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->GetInfo(&context, v1::GetEncoderInfoRequest(), &info)));
  return info;
}

}  // namespace icae
