#include "encoder_service/server/encoder_metrics.h"

namespace icae::encoder {
namespace {

using prometheus::Histogram;

prometheus::Counter* NewCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Gauge* NewGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

Histogram* NewHistogram(prometheus::Registry& registry, const std::string& name,
                        const std::string& help, const Histogram::BucketBoundaries& buckets) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

Histogram::BucketBoundaries PowersOfTwo(double from, double to) {
  Histogram::BucketBoundaries out;
  for (double b = from; b <= to; b *= 2) out.push_back(b);
  return out;
}

}  // namespace

EncoderMetrics::EncoderMetrics(prometheus::Registry& r, const std::string& p) {
  // Queueing is sub-millisecond when idle and seconds under overload.
  queue_duration_ = NewHistogram(
      r, p + "queue_duration_seconds", "Time a segment waited for a batch, seconds",
      {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  compute_duration_ = NewHistogram(
      r, p + "compute_duration_seconds", "Model time per batch, seconds",
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  spans_ = NewCounter(r, p + "spans_total", "Spans compressed (cache hits included)");
  segments_ = NewCounter(r, p + "segments_total", "Segments run through the model");
  tokens_ = NewCounter(r, p + "tokens_total", "Tokens compressed (cache hits included)");
  slots_ = NewCounter(r, p + "slots_total", "Slots produced (cache hits included)");
  batch_segments_ =
      NewHistogram(r, p + "batch_segments", "Segments per model batch", PowersOfTwo(1, 256));
  batch_tokens_ = NewHistogram(r, p + "batch_tokens",
                               "Padded positions per model batch: segments x (longest + mem_size)",
                               PowersOfTwo(64, 262144));
  queue_segments_ = NewGauge(r, p + "queue_segments", "Segments waiting for a batch");
  auto& dropped = prometheus::BuildCounter()
                      .Name(p + "dropped_segments_total")
                      .Help("Queued segments dropped without being computed, by reason")
                      .Register(r);
  dropped_deadline_ = &dropped.Add({{"reason", "deadline"}});
  dropped_cancelled_ = &dropped.Add({{"reason", "cancelled"}});
  cache_hits_ = NewCounter(r, p + "cache_hits_total", "Slot cache lookups that hit");
  cache_misses_ = NewCounter(r, p + "cache_misses_total", "Slot cache lookups that missed");
  cache_evictions_ = NewCounter(r, p + "cache_evictions_total", "Slot cache entries evicted");
  cache_bytes_ = NewGauge(r, p + "cache_bytes", "Bytes held by the slot cache");
  cache_capacity_ = NewGauge(r, p + "cache_capacity_bytes", "Slot cache capacity, bytes");
}

void EncoderMetrics::SetCacheCapacity(int64_t bytes) {
  cache_capacity_->Set(static_cast<double>(bytes));
}

void EncoderMetrics::SetQueueSegments(int64_t segments) {
  queue_segments_->Set(static_cast<double>(segments));
}

void EncoderMetrics::ObserveBatch(int segments, int64_t padded_tokens, double compute_seconds) {
  segments_->Increment(segments);
  batch_segments_->Observe(segments);
  batch_tokens_->Observe(static_cast<double>(padded_tokens));
  compute_duration_->Observe(compute_seconds);
}

void EncoderMetrics::ObserveSegmentQueueTime(double seconds) { queue_duration_->Observe(seconds); }

void EncoderMetrics::AddCompleted(int64_t spans, int64_t tokens, int64_t slots) {
  spans_->Increment(static_cast<double>(spans));
  tokens_->Increment(static_cast<double>(tokens));
  slots_->Increment(static_cast<double>(slots));
}

void EncoderMetrics::AddDropped(DropReason reason, int64_t segments) {
  (reason == DropReason::kDeadline ? dropped_deadline_ : dropped_cancelled_)
      ->Increment(static_cast<double>(segments));
}

void EncoderMetrics::AddCacheLookup(bool hit) { (hit ? cache_hits_ : cache_misses_)->Increment(); }

void EncoderMetrics::AddCacheEvictions(int64_t count) {
  cache_evictions_->Increment(static_cast<double>(count));
}

void EncoderMetrics::SetCacheBytes(int64_t bytes) { cache_bytes_->Set(static_cast<double>(bytes)); }

}  // namespace icae::encoder
