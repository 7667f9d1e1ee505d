#include "common/serving/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace icae {

const prometheus::Histogram::BucketBoundaries& RequestDurationBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return *buckets;
}

std::unique_ptr<ServingMetrics> ServingMetrics::Create(absl::string_view service,
                                                       const std::vector<std::string>& methods) {
  std::unique_ptr<ServingMetrics> m(new ServingMetrics());
  m->prefix_ = absl::StrCat("icae_", service, "_");
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->requests_ = &prometheus::BuildCounter()
                      .Name(m->prefix_ + "requests_total")
                      .Help("RPCs handled, by method and gRPC status code")
                      .Register(*m->registry_);
  m->duration_ = &prometheus::BuildHistogram()
                      .Name(m->prefix_ + "request_duration_seconds")
                      .Help("RPC wall time, seconds")
                      .Register(*m->registry_);
  m->inflight_ = &prometheus::BuildGauge()
                      .Name(m->prefix_ + "inflight_requests")
                      .Help("RPCs in progress")
                      .Register(*m->registry_)
                      .Add({});
  m->info_ = &prometheus::BuildGauge()
                  .Name(m->prefix_ + "info")
                  .Help("What is loaded (value 1)")
                  .Register(*m->registry_);
  std::vector<std::string> names = methods;
  names.push_back("unknown");
  for (const std::string& name : names) {
    auto method = std::make_unique<Method>();
    method->name = name;
    method->duration = &m->duration_->Add({{"method", name}}, RequestDurationBuckets());
    for (auto& slot : method->by_code) slot.store(nullptr, std::memory_order_relaxed);
    m->methods_.push_back(std::move(method));
  }
  return m;
}

ServingMetrics::~ServingMetrics() {
  absl::MutexLock lock(&mu_);
  exposer_.reset();  // stop serving before the registry goes
}

absl::Status ServingMetrics::StartHttp(const std::string& host_port) {
  absl::MutexLock lock(&mu_);
  if (exposer_ != nullptr) return absl::FailedPreconditionError("metrics HTTP already started");
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(host_port, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics_listen: cannot serve on ", host_port, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    exposer_.reset();
    return absl::UnavailableError(absl::StrCat("--metrics_listen: no port bound on ", host_port));
  }
  http_port_.store(ports[0]);
  return absl::OkStatus();
}

int ServingMetrics::http_port() const { return http_port_.load(); }

void ServingMetrics::SetInfo(const ModelInfoLabels& labels) {
  absl::MutexLock lock(&mu_);
  if (info_gauge_ != nullptr) info_->Remove(info_gauge_);
  info_gauge_ = &info_->Add({{"base_model", labels.base_model},
                             {"adapter", labels.adapter},
                             {"encoder_id", labels.encoder_id},
                             {"version", labels.version},
                             {"device", labels.device},
                             {"dtype", labels.dtype}});
  info_gauge_->Set(1);
}

int ServingMetrics::MethodIndex(absl::string_view method) const {
  const int n = static_cast<int>(methods_.size());
  for (int i = 0; i + 1 < n; ++i) {
    if (methods_[i]->name == method) return i;
  }
  return n - 1;
}

void ServingMetrics::RecordStart() { inflight_->Increment(); }

prometheus::Counter* ServingMetrics::CounterFor(Method& method, grpc::StatusCode code) {
  int index = static_cast<int>(code);
  if (index < 0 || index >= kNumGrpcCodes) index = grpc::StatusCode::UNKNOWN;
  std::atomic<prometheus::Counter*>& slot = method.by_code[index];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter != nullptr) return counter;
  // First time this (method, code) is seen: Family::Add is idempotent for equal labels, so two
  // racing threads get the same counter.
  counter =
      &requests_->Add({{"method", method.name},
                       {"code", std::string(GrpcCodeName(static_cast<grpc::StatusCode>(index)))}});
  slot.store(counter, std::memory_order_release);
  return counter;
}

void ServingMetrics::RecordEnd(int method_index, grpc::StatusCode code, double seconds,
                               bool was_inflight) {
  if (was_inflight) inflight_->Decrement();
  if (method_index < 0 || method_index >= static_cast<int>(methods_.size())) {
    method_index = static_cast<int>(methods_.size()) - 1;
  }
  Method& method = *methods_[method_index];
  CounterFor(method, code)->Increment();
  method.duration->Observe(seconds);
}

}  // namespace icae
