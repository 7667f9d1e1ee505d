#include "common/serving/rpc_gate.h"

#include <utility>

#include "common/serving/status_grpc.h"

namespace icae {

RpcScope::RpcScope(RpcGate* gate, int method, absl::Status admission)
    : gate_(gate), method_(method), start_(absl::Now()), admission_(std::move(admission)) {}

RpcScope::RpcScope(RpcScope&& other) noexcept
    : gate_(std::exchange(other.gate_, nullptr)),
      method_(other.method_),
      start_(other.start_),
      admission_(other.admission_) {}

RpcScope& RpcScope::operator=(RpcScope&& other) noexcept {
  if (this != &other) {
    if (gate_ != nullptr) Record(grpc::StatusCode::CANCELLED);
    gate_ = std::exchange(other.gate_, nullptr);
    method_ = other.method_;
    start_ = other.start_;
    admission_ = other.admission_;
  }
  return *this;
}

RpcScope::~RpcScope() {
  if (gate_ != nullptr) Record(grpc::StatusCode::CANCELLED);
}

grpc::Status RpcScope::Finish(const absl::Status& status) {
  grpc::Status out = ToGrpcStatus(status);
  if (gate_ != nullptr) Record(out.error_code());
  return out;
}

void RpcScope::Record(grpc::StatusCode code) {
  RpcGate* gate = std::exchange(gate_, nullptr);
  const bool admitted = admission_.ok();
  gate->metrics_->RecordEnd(method_, code, absl::ToDoubleSeconds(absl::Now() - start_), admitted);
  if (admitted) gate->Release();
}

RpcGate::RpcGate(ServingMetrics* metrics, std::unique_ptr<BearerAuth> auth)
    : metrics_(metrics), auth_(std::move(auth)) {}

RpcScope RpcGate::Admit(const grpc::ServerContextBase* context, absl::string_view method) {
  const int index = metrics_->MethodIndex(method);
  if (auth_ != nullptr) {
    absl::Status auth = auth_->Check(context->client_metadata());
    if (!auth.ok()) return RpcScope(this, index, std::move(auth));
  }
  {
    absl::MutexLock lock(&mu_);
    switch (phase_) {
      case Phase::kLoading:
        return RpcScope(this, index, absl::UnavailableError("model is loading; retry later"));
      case Phase::kDraining:
        return RpcScope(this, index, absl::UnavailableError("server is draining; retry elsewhere"));
      case Phase::kServing:
        ++inflight_;
        break;
    }
  }
  metrics_->RecordStart();
  return RpcScope(this, index, absl::OkStatus());
}

void RpcGate::Release() {
  absl::MutexLock lock(&mu_);
  --inflight_;
}

RpcGate::Phase RpcGate::phase() const {
  absl::MutexLock lock(&mu_);
  return phase_;
}

int64_t RpcGate::inflight() const {
  absl::MutexLock lock(&mu_);
  return inflight_;
}

void RpcGate::SetServing() {
  absl::MutexLock lock(&mu_);
  if (phase_ == Phase::kLoading) phase_ = Phase::kServing;
}

void RpcGate::StartDraining() {
  absl::MutexLock lock(&mu_);
  phase_ = Phase::kDraining;
}

void RpcGate::CutDrainShort() {
  absl::MutexLock lock(&mu_);
  cut_short_ = true;
}

bool RpcGate::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return inflight_ == 0 || cut_short_; };
  mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  return inflight_ == 0;
}

}  // namespace icae
