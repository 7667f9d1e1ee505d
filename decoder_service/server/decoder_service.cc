#include "decoder_service/server/decoder_service.h"

#include <utility>

namespace icae::decoder {

void DecoderService::Attach(const GenerateBackend& backend, v1::DecoderInfo info) {
  backend_ = backend;
  backend_.streams = streams_;
  info_ = std::move(info);
}

grpc::ServerUnaryReactor* DecoderService::Generate(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request,
                                                   grpc::ByteBuffer* response) {
  return GenerateUnaryReactor::Start(context, request, response, gate_->Admit(context, "Generate"),
                                     backend_);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* DecoderService::GenerateStream(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return GenerateStreamReactor::Start(context, request, gate_->Admit(context, "GenerateStream"),
                                      backend_);
}

grpc::ServerUnaryReactor* DecoderService::GetInfo(grpc::CallbackServerContext* context,
                                                  const v1::GetDecoderInfoRequest* /*request*/,
                                                  v1::DecoderInfo* info) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RpcScope rpc = gate_->Admit(context, "GetInfo");
  if (rpc.ok()) *info = info_;
  reactor->Finish(rpc.Finish());
  return reactor;
}

}  // namespace icae::decoder
