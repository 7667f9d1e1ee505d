// The encoder's own Prometheus metrics (docs/operations.md, "Encoder"), registered once on the
// shared registry of ServingMetrics and fed by the engine through EngineMetrics:
//   icae_encoder_queue_duration_seconds, _compute_duration_seconds      histograms
//   icae_encoder_spans_total, _segments_total, _tokens_total, _slots_total  counters
//   icae_encoder_batch_segments, _batch_tokens                           histograms
//   icae_encoder_queue_segments                                          gauge
//   icae_encoder_dropped_segments_total{reason="deadline"|"cancelled"}   counter
//   icae_encoder_cache_hits_total, _misses_total, _evictions_total       counters
//   icae_encoder_cache_bytes, _cache_capacity_bytes                      gauges
// Every series is created in the constructor; the hot path only touches cached pointers.
// Thread-safe.
#ifndef ICAE_ENCODER_SERVICE_SERVER_ENCODER_METRICS_H_
#define ICAE_ENCODER_SERVICE_SERVER_ENCODER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "encoder_service/engine/engine_metrics.h"

namespace icae::encoder {

class EncoderMetrics final : public EngineMetrics {
 public:
  // `prefix` is "icae_encoder_" (ServingMetrics::prefix()); `registry` must outlive this.
  EncoderMetrics(prometheus::Registry& registry, const std::string& prefix);

  void SetCacheCapacity(int64_t bytes);

  void SetQueueSegments(int64_t segments) override;
  void ObserveBatch(int segments, int64_t padded_tokens, double compute_seconds) override;
  void ObserveSegmentQueueTime(double seconds) override;
  void AddCompleted(int64_t spans, int64_t tokens, int64_t slots) override;
  void AddDropped(DropReason reason, int64_t segments) override;
  void AddCacheLookup(bool hit) override;
  void AddCacheEvictions(int64_t count) override;
  void SetCacheBytes(int64_t bytes) override;

 private:
  prometheus::Histogram* queue_duration_;
  prometheus::Histogram* compute_duration_;
  prometheus::Counter* spans_;
  prometheus::Counter* segments_;
  prometheus::Counter* tokens_;
  prometheus::Counter* slots_;
  prometheus::Histogram* batch_segments_;
  prometheus::Histogram* batch_tokens_;
  prometheus::Gauge* queue_segments_;
  prometheus::Counter* dropped_deadline_;
  prometheus::Counter* dropped_cancelled_;
  prometheus::Counter* cache_hits_;
  prometheus::Counter* cache_misses_;
  prometheus::Counter* cache_evictions_;
  prometheus::Gauge* cache_bytes_;
  prometheus::Gauge* cache_capacity_;
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_SERVER_ENCODER_METRICS_H_
