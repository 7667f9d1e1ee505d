// Admission of RPCs: the one call every handler of a registered service makes first.
//
//   grpc::ServerUnaryReactor* Compress(grpc::CallbackServerContext* ctx,
//                                      const v1::CompressRequest* request,
//                                      v1::CompressResponse* response) override {
//     grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
//     RpcScope rpc = gate_->Admit(ctx, "Compress");
//     if (!rpc.ok()) {                       // UNAUTHENTICATED, or UNAVAILABLE (loading/draining)
//       reactor->Finish(rpc.Finish());
//       return reactor;
//     }
//     ... hand `rpc` (movable) to the work; when it completes:
//     reactor->Finish(rpc.Finish(status));   // absl::Status -> grpc::Status, metrics recorded
//     return reactor;
//   }
//
// Admit checks, in order: the bearer token (when --auth_token_file is set), then the serving
// phase: kLoading -> UNAVAILABLE "model is loading", kDraining -> UNAVAILABLE "draining". An
// admitted RPC counts as in flight until its RpcScope is finished or destroyed; the runner's drain
// waits for that count to reach zero. gRPC's health and reflection services bypass the gate.
// Thread-safe.
#ifndef ICAE_COMMON_SERVING_RPC_GATE_H_
#define ICAE_COMMON_SERVING_RPC_GATE_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/serving/bearer_auth.h"
#include "common/serving/metrics.h"

namespace icae {

class RpcGate;

// One RPC from admission to its final status. Movable, not copyable. Finish exactly once; a
// scope destroyed unfinished records CANCELLED (the RPC ended without an outcome).
class RpcScope {
 public:
  RpcScope(RpcScope&& other) noexcept;
  RpcScope& operator=(RpcScope&& other) noexcept;
  RpcScope(const RpcScope&) = delete;
  RpcScope& operator=(const RpcScope&) = delete;
  ~RpcScope();

  // True when admitted; otherwise status() says why and the handler must Finish() at once.
  bool ok() const { return admission_.ok(); }
  const absl::Status& status() const { return admission_; }

  // Records the outcome (code counter, duration, in-flight) and returns it mapped by
  // ToGrpcStatus, ready for reactor->Finish(). Finish() uses the admission status. A second
  // call records nothing and returns the same mapping.
  grpc::Status Finish(const absl::Status& status);
  grpc::Status Finish() { return Finish(admission_); }

 private:
  friend class RpcGate;
  RpcScope(RpcGate* gate, int method, absl::Status admission);
  void Record(grpc::StatusCode code);

  RpcGate* gate_ = nullptr;  // null once finished or moved from
  int method_ = 0;
  absl::Time start_;
  absl::Status admission_;
};

class RpcGate {
 public:
  enum class Phase { kLoading, kServing, kDraining };

  // `metrics` must outlive the gate; `auth` may be null (no token required).
  RpcGate(ServingMetrics* metrics, std::unique_ptr<BearerAuth> auth);

  // See the file comment. `method` is the RPC's name as in the metrics label ("Compress").
  RpcScope Admit(const grpc::ServerContextBase* context, absl::string_view method);

  Phase phase() const;
  int64_t inflight() const;

  // For the runner. Phases only move forward: kLoading -> kServing -> kDraining.
  void SetServing();
  void StartDraining();
  // Blocks until no admitted RPC is in flight, `deadline` passes or CutDrainShort() is called;
  // true when idle.
  bool WaitIdle(absl::Time deadline);
  void CutDrainShort();

 private:
  friend class RpcScope;
  void Release();

  ServingMetrics* const metrics_;
  const std::unique_ptr<BearerAuth> auth_;
  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kLoading;
  int64_t inflight_ ABSL_GUARDED_BY(mu_) = 0;
  bool cut_short_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_RPC_GATE_H_
