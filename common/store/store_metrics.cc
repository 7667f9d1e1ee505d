#include "common/store/store_metrics.h"

namespace icae {

StoreMetrics::StoreMetrics(prometheus::Registry& r, const std::string& p) {
  auto& lookups = prometheus::BuildCounter()
                      .Name(p + "store_lookups_total")
                      .Help("Slot store keys looked up, by result")
                      .Register(r);
  hits_ = &lookups.Add({{"result", "hit"}});
  misses_ = &lookups.Add({{"result", "miss"}});
  lookup_errors_ = &lookups.Add({{"result", "error"}});
  auto& writes = prometheus::BuildCounter()
                     .Name(p + "store_writes_total")
                     .Help("Slot store entries written (ok), failed (error) or not attempted "
                           "(dropped: too large, or the write queue was full)")
                     .Register(r);
  writes_ok_ = &writes.Add({{"result", "ok"}});
  write_errors_ = &writes.Add({{"result", "error"}});
  writes_dropped_ = &writes.Add({{"result", "dropped"}});
  auto& bytes = prometheus::BuildCounter()
                    .Name(p + "store_bytes_total")
                    .Help("Bytes read from and written to the slot store")
                    .Register(r);
  bytes_read_ = &bytes.Add({{"direction", "read"}});
  bytes_written_ = &bytes.Add({{"direction", "written"}});
  auto& duration = prometheus::BuildHistogram()
                       .Name(p + "store_duration_seconds")
                       .Help("Slot store round trips, seconds")
                       .Register(r);
  const prometheus::Histogram::BucketBoundaries buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
  get_seconds_ = &duration.Add({{"op", "get"}}, buckets);
  set_seconds_ = &duration.Add({{"op", "set"}}, buckets);
  queue_bytes_ = &prometheus::BuildGauge()
                      .Name(p + "store_write_queue_bytes")
                      .Help("Bytes of background slot store writes waiting")
                      .Register(r)
                      .Add({});
}

void StoreMetrics::AddLookups(int64_t hits, int64_t misses, int64_t errors) {
  hits_->Increment(static_cast<double>(hits));
  misses_->Increment(static_cast<double>(misses));
  lookup_errors_->Increment(static_cast<double>(errors));
}

void StoreMetrics::AddWrites(int64_t ok, int64_t errors, int64_t dropped) {
  writes_ok_->Increment(static_cast<double>(ok));
  write_errors_->Increment(static_cast<double>(errors));
  writes_dropped_->Increment(static_cast<double>(dropped));
}

void StoreMetrics::AddBytes(int64_t read, int64_t written) {
  bytes_read_->Increment(static_cast<double>(read));
  bytes_written_->Increment(static_cast<double>(written));
}

void StoreMetrics::ObserveRoundTrip(bool write, double seconds) {
  (write ? set_seconds_ : get_seconds_)->Observe(seconds);
}

void StoreMetrics::SetQueueBytes(int64_t bytes) { queue_bytes_->Set(static_cast<double>(bytes)); }

}  // namespace icae
