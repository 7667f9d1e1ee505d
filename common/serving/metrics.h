// Prometheus metrics shared by both services (docs/operations.md, "Metrics / Both services"):
//   icae_<svc>_requests_total{method,code}        counter
//   icae_<svc>_request_duration_seconds{method}   histogram
//   icae_<svc>_inflight_requests                  gauge
//   icae_<svc>_info{base_model,adapter,encoder_id,version,device,dtype} = 1
// plus the registry that service-specific families are added to, and the optional HTTP endpoint.
//
// Every metric object used on a request path is created up front or cached: per-method series
// are made at Create from the method list, per-(method, code) counters on first use and then
// read lock-free from a fixed array indexed by the gRPC code. Thread-safe.
// Most code does not touch this class directly: RpcGate::Admit returns an RpcScope that records
// one RPC.
#ifndef ICAE_COMMON_SERVING_METRICS_H_
#define ICAE_COMMON_SERVING_METRICS_H_

#include <grpcpp/support/status_code_enum.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/serving/status_grpc.h"

namespace icae {

// Labels of icae_<svc>_info (what is loaded).
struct ModelInfoLabels {
  std::string base_model;
  std::string adapter;
  std::string encoder_id;
  std::string version;
  std::string device;
  std::string dtype;
};

class ServingMetrics {
 public:
  // `service` is "encoder" or "decoder" (names become icae_<service>_...); `methods` are the RPC
  // method names used as the `method` label ("Compress", "GetInfo", ...). A method not in the list
  // is recorded under method="unknown".
  static std::unique_ptr<ServingMetrics> Create(absl::string_view service,
                                                const std::vector<std::string>& methods);
  ~ServingMetrics();

  // The shared registry: add the service's own families here (once, at start-up).
  prometheus::Registry& registry() { return *registry_; }
  // "icae_encoder_" / "icae_decoder_": prefix for the service's own metric names.
  const std::string& prefix() const { return prefix_; }

  // Serves /metrics over HTTP on HOST:PORT (port 0 picks one). Unavailable when it cannot bind.
  // At most once.
  absl::Status StartHttp(const std::string& host_port);
  // The bound HTTP port, 0 before StartHttp.
  int http_port() const;

  // Sets icae_<svc>_info{...} = 1, replacing the previous labels.
  void SetInfo(const ModelInfoLabels& labels);

  // Used by RpcScope. MethodIndex gives the "unknown" slot for a method not listed.
  // RecordStart counts an admitted RPC in the in-flight gauge; RecordEnd counts any RPC's outcome
  // and, when `was_inflight`, takes it off the gauge.
  int MethodIndex(absl::string_view method) const;
  void RecordStart();
  void RecordEnd(int method_index, grpc::StatusCode code, double seconds, bool was_inflight);

 private:
  struct Method {
    std::string name;
    prometheus::Histogram* duration = nullptr;
    std::array<std::atomic<prometheus::Counter*>, kNumGrpcCodes> by_code{};
  };
  ServingMetrics() = default;
  prometheus::Counter* CounterFor(Method& method, grpc::StatusCode code);

  std::string prefix_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* duration_ = nullptr;
  prometheus::Family<prometheus::Gauge>* info_ = nullptr;
  prometheus::Gauge* inflight_ = nullptr;
  std::vector<std::unique_ptr<Method>> methods_;  // fixed after Create; last one is "unknown"
  absl::Mutex mu_;
  prometheus::Gauge* info_gauge_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<prometheus::Exposer> exposer_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> http_port_{0};
};

// Latency buckets of icae_<svc>_request_duration_seconds (5 ms .. 5 min).
const prometheus::Histogram::BucketBoundaries& RequestDurationBuckets();

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_METRICS_H_
