// Prometheus metrics of a slot store client (one set per service, under its prefix):
//   <prefix>store_lookups_total{result="hit|miss|error"}   keys looked up
//   <prefix>store_writes_total{result="ok|error|dropped"}  entries written, failed, not attempted
//   <prefix>store_bytes_total{direction="read|written"}
//   <prefix>store_duration_seconds{op="get|set"}           one round trip
//   <prefix>store_write_queue_bytes                        background writes waiting
// Thread-safe (prometheus-cpp metrics are).
#ifndef ICAE_COMMON_STORE_STORE_METRICS_H_
#define ICAE_COMMON_STORE_STORE_METRICS_H_

#include <cstdint>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace icae {

class StoreMetrics {
 public:
  StoreMetrics(prometheus::Registry& registry, const std::string& prefix);

  void AddLookups(int64_t hits, int64_t misses, int64_t errors);
  void AddWrites(int64_t ok, int64_t errors, int64_t dropped);
  void AddBytes(int64_t read, int64_t written);
  void ObserveRoundTrip(bool write, double seconds);
  void SetQueueBytes(int64_t bytes);

 private:
  prometheus::Counter *hits_, *misses_, *lookup_errors_;
  prometheus::Counter *writes_ok_, *write_errors_, *writes_dropped_;
  prometheus::Counter *bytes_read_, *bytes_written_;
  prometheus::Histogram *get_seconds_, *set_seconds_;
  prometheus::Gauge* queue_bytes_;
};

}  // namespace icae

#endif  // ICAE_COMMON_STORE_STORE_METRICS_H_
