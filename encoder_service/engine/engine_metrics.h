// What the engine reports as it works. The server implements it with Prometheus
// (server/encoder_metrics.h); tests may count calls. The default methods do nothing.
// Implementations must be thread-safe and quick: they are called from executor threads, often
// under no lock but on the hot path.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_ENGINE_METRICS_H_
#define ICAE_ENCODER_SERVICE_ENGINE_ENGINE_METRICS_H_

#include <cstdint>

namespace icae::encoder {

enum class DropReason { kDeadline, kCancelled };

class EngineMetrics {
 public:
  virtual ~EngineMetrics() = default;

  // Segments waiting for a batch, after every change.
  virtual void SetQueueSegments(int64_t segments) {}
  // A model batch ran: its size, padded positions (segments x (longest + mem_size)) and time.
  virtual void ObserveBatch(int segments, int64_t padded_tokens, double compute_seconds) {}
  // One segment left the queue for a batch after waiting `seconds`.
  virtual void ObserveSegmentQueueTime(double seconds) {}
  // A request finished successfully: spans, tokens and slots it returned (cache hits included).
  virtual void AddCompleted(int64_t spans, int64_t tokens, int64_t slots) {}
  // Queued segments dropped without being computed.
  virtual void AddDropped(DropReason reason, int64_t segments) {}
  // Slot cache: one lookup, evictions, and the bytes held (after every change).
  virtual void AddCacheLookup(bool hit) {}
  virtual void AddCacheEvictions(int64_t count) {}
  virtual void SetCacheBytes(int64_t bytes) {}
};

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_ENGINE_METRICS_H_
