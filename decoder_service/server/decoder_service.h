// icae.v1.Decoder over gRPC's callback API: thin handlers that admit the call (RpcGate: bearer
// token, loading / draining), then hand it to a reactor (generate_reactors.h) or answer GetInfo.
// Registered before the model loads (calls are refused with UNAVAILABLE until SetServing);
// Attach must be called once before the runner's SetServing. Thread-safe after that.
#ifndef ICAE_DECODER_SERVICE_SERVER_DECODER_SERVICE_H_
#define ICAE_DECODER_SERVICE_SERVER_DECODER_SERVICE_H_

#include "common/serving/rpc_gate.h"
#include "decoder_service/server/generate_reactors.h"
#include "icae/v1/decoder.grpc.pb.h"

namespace icae::decoder {

// Generate and GenerateStream are registered raw so that the handler parses the request itself:
// a request protobuf refuses (malformed, or a string that is not UTF-8) is INVALID_ARGUMENT and
// counted, not a bare status from generated code that never reaches the handler.
class DecoderService final
    : public v1::Decoder::WithRawCallbackMethod_Generate<
          v1::Decoder::WithRawCallbackMethod_GenerateStream<v1::Decoder::CallbackService>> {
 public:
  // `gate` and `streams` (may be null: streams unbounded) must outlive the service.
  explicit DecoderService(RpcGate* gate, StreamWatch* streams = nullptr)
      : gate_(gate), streams_(streams) {}

  // The loaded engine (must outlive the server's Wait/Stop) and GetInfo's answer (the stream
  // watch given at construction joins the backend). The gate's SetServing, which follows,
  // publishes these to the handler threads.
  void Attach(const GenerateBackend& backend, v1::DecoderInfo info);

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GenerateStream(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetDecoderInfoRequest* request,
                                    v1::DecoderInfo* info) override;

 private:
  RpcGate* const gate_;
  StreamWatch* const streams_;
  GenerateBackend backend_;
  v1::DecoderInfo info_;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_SERVER_DECODER_SERVICE_H_
