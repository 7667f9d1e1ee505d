#include "encoder_service/server/encoder_service.h"

#include <utility>

#include "encoder_service/server/compress_reactor.h"

namespace icae::encoder {

EncoderService::EncoderService(RpcGate* gate, ServerInfo server_info)
    : gate_(gate), server_info_(std::move(server_info)) {}

void EncoderService::SetEngine(Engine* engine) { engine_.store(engine); }

grpc::ServerUnaryReactor* EncoderService::Compress(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request,
                                                   grpc::ByteBuffer* response) {
  RpcScope rpc = gate_->Admit(context, "Compress");
  Engine* engine = engine_.load();
  if (rpc.ok() && engine == nullptr) {
    // Unreachable when SetEngine precedes SetServing; never dereference a missing engine.
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(rpc.Finish(absl::UnavailableError("model is loading; retry later")));
    return reactor;
  }
  return CompressReactor::Start(engine, std::move(rpc), context, request, response);
}

grpc::ServerUnaryReactor* EncoderService::GetInfo(grpc::CallbackServerContext* context,
                                                  const v1::GetEncoderInfoRequest* /*request*/,
                                                  v1::EncoderInfo* info) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RpcScope rpc = gate_->Admit(context, "GetInfo");
  if (!rpc.ok()) {
    reactor->Finish(rpc.Finish());
    return reactor;
  }
  Engine* engine = engine_.load();
  if (engine == nullptr) {
    reactor->Finish(rpc.Finish(absl::UnavailableError("model is loading; retry later")));
    return reactor;
  }
  FillEncoderInfo(engine->model_info(), engine->options(), server_info_, info);
  reactor->Finish(rpc.Finish(absl::OkStatus()));
  return reactor;
}

}  // namespace icae::encoder
