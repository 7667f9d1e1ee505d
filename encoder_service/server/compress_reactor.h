// One Compress call: a unary reactor that parses the request bytes, enqueues the request on the
// engine and finishes from the engine's callback (serializing the response there); OnCancel (client
// cancel, deadline, server shutdown) cancels the engine work. Owns itself: deleted in OnDone.
// Finish is called exactly once (the engine calls back exactly once for an accepted request).
#ifndef ICAE_ENCODER_SERVICE_SERVER_COMPRESS_REACTOR_H_
#define ICAE_ENCODER_SERVICE_SERVER_COMPRESS_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/serving/rpc_gate.h"
#include "encoder_service/engine/engine.h"
#include "icae/v1/encoder.pb.h"

namespace icae::encoder {

class CompressReactor final : public grpc::ServerUnaryReactor {
 public:
  // Starts the call; the returned reactor belongs to gRPC. `engine` may be null only when `rpc`
  // was refused.
  static CompressReactor* Start(Engine* engine, RpcScope rpc, grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* request, grpc::ByteBuffer* response);

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  CompressReactor(Engine* engine, RpcScope rpc, absl::Time deadline, grpc::ByteBuffer* response);
  void Run(const grpc::ByteBuffer& request);
  void Complete(absl::StatusOr<EncodeResult> result);
  void End(const absl::Status& status);

  Engine* const engine_;
  RpcScope rpc_;
  const absl::Time deadline_;
  bool handles_ = false;  // set before Enqueue, read by Complete
  grpc::ByteBuffer* const response_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<RequestId> id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_COMPRESS_REACTOR_H_
