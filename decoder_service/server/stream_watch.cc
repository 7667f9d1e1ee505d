#include "decoder_service/server/stream_watch.h"

#include <prometheus/family.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"

namespace icae::decoder {

absl::Status StreamLimits::Validate() const {
  if (max_open < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max_streams ", max_open, " is not >= 1"));
  }
  if (idle_timeout < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(absl::StrCat("--stream_idle_seconds ",
                                                   absl::ToDoubleSeconds(idle_timeout),
                                                   " is below 0.1"));
  }
  return absl::OkStatus();
}

StreamWatch::StreamWatch(const StreamLimits& limits, ServingMetrics* metrics) : limits_(limits) {
  prometheus::Registry& registry = metrics->registry();
  const std::string& prefix = metrics->prefix();
  open_gauge_ = &prometheus::BuildGauge()
                     .Name(prefix + "streams_open")
                     .Help("GenerateStream calls open now (at most --max_streams)")
                     .Register(registry)
                     .Add({});
  idle_cancelled_ = &prometheus::BuildCounter()
                         .Name(prefix + "streams_idle_cancelled_total")
                         .Help("Streams cancelled because the client took no chunk for "
                               "--stream_idle_seconds")
                         .Register(registry)
                         .Add({});
  watchdog_ = std::thread([this] { Watchdog(); });
}

StreamWatch::~StreamWatch() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  watchdog_.join();
}

int64_t StreamWatch::Now() {
  return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now().time_since_epoch())
                                  .count());
}

absl::Status StreamWatch::Open(grpc::CallbackServerContext* context,
                               const std::atomic<int64_t>* write_started) {
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(streams_.size()) >= limits_.max_open) {
    return absl::ResourceExhaustedError(absl::StrCat(
        limits_.max_open, " streams are open (--max_streams); retry later"));
  }
  streams_.emplace(context, Entry{write_started});
  open_gauge_->Set(static_cast<double>(streams_.size()));
  return absl::OkStatus();
}

void StreamWatch::Close(grpc::CallbackServerContext* context) {
  absl::MutexLock lock(&mu_);
  if (streams_.erase(context) > 0) open_gauge_->Set(static_cast<double>(streams_.size()));
}

int StreamWatch::open() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

void StreamWatch::Watchdog() {
  const absl::Duration tick = std::min(limits_.idle_timeout / 4, absl::Seconds(1));
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    mu_.AwaitWithTimeout(absl::Condition(&stop_), tick);
    if (stop_) break;
    const int64_t stale = Now() - absl::ToInt64Nanoseconds(limits_.idle_timeout);
    for (auto& [context, entry] : streams_) {
      const int64_t started = entry.write_started->load(std::memory_order_relaxed);
      if (entry.cancelled || started == 0 || started > stale) continue;
      // Under mu_: Close (from OnDone, before the context goes) cannot run meanwhile.
      entry.cancelled = true;
      idle_cancelled_->Increment();
      ICAE_LOG(WARNING) << "GenerateStream: the client took no chunk for "
                        << absl::ToDoubleSeconds(limits_.idle_timeout)
                        << " s (--stream_idle_seconds); cancelling the stream";
      context->TryCancel();
    }
  }
}

}  // namespace icae::decoder
