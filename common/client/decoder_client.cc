#include "common/client/decoder_client.h"

#include "common/base/status_macros.h"
#include "common/serving/status_grpc.h"

namespace icae {

DecoderClient::DecoderClient(std::shared_ptr<const Connection> connection)
    : connection_(std::move(connection)), stub_(v1::Decoder::NewStub(connection_->channel())) {}

absl::StatusOr<DecoderClient> DecoderClient::Create(const ClientOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Connection> connection, Connection::Create(options));
  return DecoderClient(std::move(connection));
}

absl::StatusOr<v1::GenerateResponse> DecoderClient::Generate(const v1::GenerateRequest& request,
                                                             absl::Duration timeout) const {
  grpc::ClientContext context;
  connection_->PrepareContext(&context, timeout);
  v1::GenerateResponse response;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->Generate(&context, request, &response)));
  return response;
}

absl::Status DecoderClient::GenerateStream(
    const v1::GenerateRequest& request,
    const std::function<bool(const v1::GenerateChunk&)>& on_chunk, absl::Duration timeout) const {
  grpc::ClientContext context;
  connection_->PrepareContext(&context, timeout);
  std::unique_ptr<grpc::ClientReader<v1::GenerateChunk>> reader =
      stub_->GenerateStream(&context, request);
  v1::GenerateChunk chunk;
  bool stopped = false;
  while (reader->Read(&chunk)) {
    if (!on_chunk(chunk)) {
      stopped = true;
      context.TryCancel();
      // Drain what is already buffered so Finish() does not wait on the server.
      while (reader->Read(&chunk)) {
      }
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (stopped) return absl::CancelledError("GenerateStream cancelled by the caller");
  return FromGrpcStatus(status);
}

absl::StatusOr<v1::DecoderInfo> DecoderClient::GetInfo(absl::Duration timeout) const {
  grpc::ClientContext context;
  connection_->PrepareContext(&context, timeout);
  v1::DecoderInfo info;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->GetInfo(&context, v1::GetDecoderInfoRequest(), &info)));
  return info;
}

}  // namespace icae
