#include "decoder_service/server/decoder_metrics.h"

#include <prometheus/family.h>

#include <algorithm>

namespace icae::decoder {
namespace {

using Buckets = prometheus::Histogram::BucketBoundaries;

// Bucket boundaries as vLLM's for the same series, so existing dashboards read the same.
const Buckets& TtftBuckets() {
  static const auto* b = new Buckets{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
                                     0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
  return *b;
}
const Buckets& ItlBuckets() {
  static const auto* b = new Buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                     0.2,   0.3,   0.4,  0.5,   0.75, 1.0,   2.5};
  return *b;
}
const Buckets& LatencyBuckets() {
  static const auto* b =
      new Buckets{0.01, 0.05, 0.1,  0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,
                  10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0};
  return *b;
}
const Buckets& BatchBuckets() {
  static const auto* b = new Buckets{1, 2, 4, 8, 16, 32, 64, 128, 256};
  return *b;
}

prometheus::Histogram* Histogram(prometheus::Registry& registry, const std::string& name,
                                 const std::string& help, const Buckets& buckets) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}
prometheus::Gauge* Gauge(prometheus::Registry& registry, const std::string& name,
                         const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}
prometheus::Counter* Counter(prometheus::Registry& registry, const std::string& name,
                             const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

DecoderMetrics::DecoderMetrics(prometheus::Registry& registry, const std::string& prefix,
                               int64_t kv_tokens_capacity, int64_t kv_block_tokens)
    : kv_tokens_capacity_(kv_tokens_capacity),
      kv_block_tokens_(std::max<int64_t>(1, kv_block_tokens)) {
  ttft_ = Histogram(registry, prefix + "time_to_first_token_seconds",
                    "Admission to the first generated token, seconds", TtftBuckets());
  itl_ = Histogram(registry, prefix + "inter_token_latency_seconds",
                   "Between consecutive tokens of a sequence, seconds", ItlBuckets());
  e2e_ = Histogram(registry, prefix + "e2e_request_latency_seconds",
                   "Arrival to the last token, seconds", LatencyBuckets());
  queue_ = Histogram(registry, prefix + "request_queue_time_seconds",
                     "Arrival to admission into the running batch, seconds", LatencyBuckets());
  batch_ = Histogram(registry, prefix + "batch_size", "Sequences per decode step", BatchBuckets());
  running_ = Gauge(registry, prefix + "num_requests_running", "Sequences in the running batch");
  waiting_ = Gauge(registry, prefix + "num_requests_waiting", "Requests waiting for admission");
  kv_used_ = Gauge(registry, prefix + "kv_cache_tokens_used",
                   "KV-cache positions in use: running sequences' reservations and shared "
                   "context prefixes (kept or read)");
  kv_capacity_ = Gauge(registry, prefix + "kv_cache_tokens_capacity",
                       "KV-cache positions of the pool (--max_kv_tokens in whole blocks)");
  kv_capacity_->Set(static_cast<double>(kv_tokens_capacity));
  auto& blocks = prometheus::BuildGauge()
                     .Name(prefix + "kv_blocks")
                     .Help("Blocks of the KV pool (--kv_block_tokens positions each) held by "
                           "running sequences and shared context prefixes, and free")
                     .Register(registry);
  kv_blocks_used_ = &blocks.Add({{"state", "used"}});
  kv_blocks_free_ = &blocks.Add({{"state", "free"}});
  kv_blocks_free_->Set(static_cast<double>(kv_tokens_capacity / kv_block_tokens_));
  prompt_tokens_ = Counter(registry, prefix + "prompt_tokens_total",
                           "Text context, template and prompt tokens prefilled");
  slot_tokens_ = Counter(registry, prefix + "slot_tokens_total", "Slot positions prefilled");
  uncompressed_tokens_ = Counter(registry, prefix + "uncompressed_context_tokens_total",
                                 "Context tokens the requests would have cost uncompressed");
  generation_tokens_ = Counter(registry, prefix + "generation_tokens_total", "Tokens generated");
  auto& finished = prometheus::BuildCounter()
                       .Name(prefix + "requests_finished_total")
                       .Help("Requests that left the engine, by finish reason")
                       .Register(registry);
  finished_eos_ = &finished.Add({{"finish_reason", "eos"}});
  finished_length_ = &finished.Add({{"finish_reason", "length"}});
  finished_stop_ = &finished.Add({{"finish_reason", "stop"}});
  finished_cancelled_ = &finished.Add({{"finish_reason", "cancelled"}});
  finished_error_ = &finished.Add({{"finish_reason", "error"}});
  preemptions_ = Counter(registry, prefix + "num_preemptions_total",
                         "Running requests preempted when the KV budget was spent (resumed by "
                         "recompute)");
  auto& prefill = prometheus::BuildCounter()
                      .Name(prefix + "prefill_positions_total")
                      .Help("Context positions prefilled, in steps of their own (alone) or riding "
                            "along the running sequences' decode steps (carried)")
                      .Register(registry);
  prefill_alone_ = &prefill.Add({{"scheduled", "alone"}});
  prefill_carried_ = &prefill.Add({{"scheduled", "carried"}});
  auto& lookups = prometheus::BuildCounter()
                      .Name(prefix + "prefix_cache_lookups_total")
                      .Help("Requests whose context prefix KV was reused (hit) or prefilled and "
                            "kept (miss)")
                      .Register(registry);
  prefix_hits_ = &lookups.Add({{"result", "hit"}});
  prefix_misses_ = &lookups.Add({{"result", "miss"}});
  prefix_reused_ = Counter(registry, prefix + "prefix_cache_reused_positions_total",
                           "Context positions whose KV was reused instead of prefilled");
  prefix_evictions_ = Counter(registry, prefix + "prefix_cache_evictions_total",
                              "Kept context prefixes dropped (byte limit or KV pressure)");
  prefix_bytes_ = Gauge(registry, prefix + "prefix_cache_bytes",
                        "Bytes of kept context-prefix KV (--prefix_cache_bytes)");
  prefix_entries_ = Gauge(registry, prefix + "prefix_cache_entries", "Context prefixes kept");
}

void DecoderMetrics::OnAdmitted(double queue_seconds, int prompt_tokens, int slot_tokens,
                                int uncompressed_context_tokens) {
  queue_->Observe(queue_seconds);
  prompt_tokens_->Increment(prompt_tokens);
  slot_tokens_->Increment(slot_tokens);
  uncompressed_tokens_->Increment(uncompressed_context_tokens);
}

void DecoderMetrics::OnFirstToken(double seconds) { ttft_->Observe(seconds); }
void DecoderMetrics::OnInterToken(double seconds) { itl_->Observe(seconds); }
void DecoderMetrics::OnTokens(int count) { generation_tokens_->Increment(count); }
void DecoderMetrics::OnDecodeStep(int batch) { batch_->Observe(batch); }

void DecoderMetrics::OnFinished(absl::string_view reason, double e2e_seconds) {
  e2e_->Observe(e2e_seconds);
  prometheus::Counter* counter = reason == "eos"         ? finished_eos_
                                 : reason == "length"    ? finished_length_
                                 : reason == "stop"      ? finished_stop_
                                 : reason == "cancelled" ? finished_cancelled_
                                                         : finished_error_;
  counter->Increment();
}

void DecoderMetrics::OnState(int running, int waiting, int64_t kv_tokens_used) {
  running_->Set(running);
  waiting_->Set(waiting);
  kv_used_->Set(static_cast<double>(kv_tokens_used));
  // The budget holds whole blocks, so these are exact.
  kv_blocks_used_->Set(static_cast<double>(kv_tokens_used / kv_block_tokens_));
  kv_blocks_free_->Set(
      static_cast<double>((kv_tokens_capacity_ - kv_tokens_used) / kv_block_tokens_));
}

}  // namespace icae::decoder

namespace icae::decoder {

void DecoderMetrics::OnPreempted() { preemptions_->Increment(); }

void DecoderMetrics::OnPrefill(int64_t positions, bool carried) {
  (carried ? prefill_carried_ : prefill_alone_)->Increment(static_cast<double>(positions));
}

void DecoderMetrics::OnPrefixLookup(bool hit, int64_t reused_positions) {
  (hit ? prefix_hits_ : prefix_misses_)->Increment();
  prefix_reused_->Increment(static_cast<double>(reused_positions));
}

void DecoderMetrics::OnPrefixCache(int64_t bytes, int entries, int64_t evicted) {
  prefix_bytes_->Set(static_cast<double>(bytes));
  prefix_entries_->Set(entries);
  if (evicted > 0) prefix_evictions_->Increment(static_cast<double>(evicted));
}

}  // namespace icae::decoder
