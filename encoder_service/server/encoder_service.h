// icae.v1.Encoder on gRPC's callback API: thin adapters between the protocol and the engine.
//
// Compress is registered raw (bytes in, bytes out) so that the handler parses the request itself:
// protobuf refuses a proto3 string holding invalid UTF-8, which gRPC would report as a bare
// INTERNAL; here it becomes INVALID_ARGUMENT naming the span. The handler admits the call through
// the RpcGate (bearer token, serving phase, metrics), parses and converts the request and
// enqueues it; the engine's callback fills the response and finishes the RPC from
// an engine thread. The handler never waits: a gRPC thread only converts and enqueues. When the
// client cancels or its deadline passes, OnCancel tells the engine, which drops the queued work
// and ends the call with CANCELLED / DEADLINE_EXCEEDED.
//
// The service is registered before the model is loaded (so health and reflection answer while
// loading); SetEngine attaches the engine before the runner starts serving. Thread-safe.
#ifndef ICAE_ENCODER_SERVICE_SERVER_ENCODER_SERVICE_H_
#define ICAE_ENCODER_SERVICE_SERVER_ENCODER_SERVICE_H_

#include <grpcpp/support/byte_buffer.h>

#include <atomic>

#include "common/serving/rpc_gate.h"
#include "encoder_service/engine/engine.h"
#include "encoder_service/server/proto_convert.h"
#include "icae/v1/encoder.grpc.pb.h"

namespace icae::encoder {

class EncoderService final
    : public v1::Encoder::WithRawCallbackMethod_Compress<v1::Encoder::CallbackService> {
 public:
  // `gate` must outlive the service.
  EncoderService(RpcGate* gate, ServerInfo server_info);

  // Attaches the engine (not owned; must outlive every call). Call before RpcGate::SetServing:
  // until then the gate refuses calls, so no handler reaches the engine.
  void SetEngine(Engine* engine);

  grpc::ServerUnaryReactor* Compress(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetEncoderInfoRequest* request,
                                    v1::EncoderInfo* info) override;

 private:
  RpcGate* const gate_;
  const ServerInfo server_info_;
  std::atomic<Engine*> engine_{nullptr};
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_ENCODER_SERVICE_H_
