// The decoder's own Prometheus metrics (docs/operations.md, "Decoder"), fed by the engine:
//   icae_decoder_time_to_first_token_seconds, _inter_token_latency_seconds,
//   _e2e_request_latency_seconds, _request_queue_time_seconds, _batch_size    histograms
//   icae_decoder_num_requests_running / _waiting, _kv_cache_tokens_used / _capacity   gauges
//   icae_decoder_kv_blocks{state="used"|"free"}                               gauge
//   icae_decoder_prompt_tokens_total, _slot_tokens_total,
//   _uncompressed_context_tokens_total, _generation_tokens_total              counters
//   icae_decoder_requests_finished_total{finish_reason}, _num_preemptions_total  counters
//   icae_decoder_prefill_positions_total{scheduled="alone"|"carried"}          counter
//   icae_decoder_prefix_cache_lookups_total{result="hit"|"miss"},
//   _prefix_cache_reused_positions_total, _prefix_cache_evictions_total       counters
//   icae_decoder_prefix_cache_bytes / _entries                                gauges
// Every series is created in the constructor; the hooks only touch cached objects. Thread-safe.
#ifndef ICAE_DECODER_SERVICE_SERVER_DECODER_METRICS_H_
#define ICAE_DECODER_SERVICE_SERVER_DECODER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "decoder_service/engine/engine_observer.h"

namespace icae::decoder {

class DecoderMetrics final : public EngineObserver {
 public:
  // Registers the families on `registry` with names `prefix` + ... ("icae_decoder_"). The KV
  // pool holds `kv_tokens_capacity` positions in blocks of `kv_block_tokens`.
  DecoderMetrics(prometheus::Registry& registry, const std::string& prefix,
                 int64_t kv_tokens_capacity, int64_t kv_block_tokens);

  void OnAdmitted(double queue_seconds, int prompt_tokens, int slot_tokens,
                  int uncompressed_context_tokens) override;
  void OnFirstToken(double seconds) override;
  void OnInterToken(double seconds) override;
  void OnTokens(int count) override;
  void OnDecodeStep(int batch) override;
  void OnFinished(absl::string_view reason, double e2e_seconds) override;
  void OnState(int running, int waiting, int64_t kv_tokens_used) override;
  void OnPreempted() override;
  void OnPrefill(int64_t positions, bool carried) override;
  void OnPrefixLookup(bool hit, int64_t reused_positions) override;
  void OnPrefixCache(int64_t bytes, int entries, int64_t evicted) override;

 private:
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Histogram* e2e_;
  prometheus::Histogram* queue_;
  prometheus::Histogram* batch_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* kv_used_;
  prometheus::Gauge* kv_capacity_;
  prometheus::Gauge* kv_blocks_used_;
  prometheus::Gauge* kv_blocks_free_;
  const int64_t kv_tokens_capacity_;
  const int64_t kv_block_tokens_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* slot_tokens_;
  prometheus::Counter* uncompressed_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Counter* finished_eos_;
  prometheus::Counter* finished_length_;
  prometheus::Counter* finished_stop_;
  prometheus::Counter* finished_cancelled_;
  prometheus::Counter* finished_error_;
  prometheus::Counter* preemptions_;
  prometheus::Counter* prefill_alone_;
  prometheus::Counter* prefill_carried_;
  prometheus::Counter* prefix_hits_;
  prometheus::Counter* prefix_misses_;
  prometheus::Counter* prefix_reused_;
  prometheus::Counter* prefix_evictions_;
  prometheus::Gauge* prefix_bytes_;
  prometheus::Gauge* prefix_entries_;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_SERVER_DECODER_METRICS_H_
