// Bounds what GenerateStream calls may hold: at most `max_open` streams are open at once (one
// more is RESOURCE_EXHAUSTED before any work is queued), and a stream whose client has not taken
// a chunk for `idle_timeout` (one write in flight that long: the client stopped reading, its
// flow-control window is full) is cancelled, so an unread stream without a deadline cannot hold
// its reactor, its pending output and its engine request forever.
//
//   StreamWatch watch({.max_open = 1024, .idle_timeout = absl::Seconds(120)}, &metrics);
//   // In the reactor: Open before queuing work with the reactor's write clock, which it sets
//   // (StreamWatch::Now()) when a write starts and zeroes when it completes; Close in OnDone
//   // (the context is valid until then).
//
// A watchdog thread checks the open streams every min(idle_timeout / 4, 1 s) and cancels a stale
// one with ServerContext::TryCancel: the reactor then sees OnCancel and a failed write, the
// engine request is cancelled and the call ends CANCELLED. The write clocks are atomics the
// reactor owns, so no reactor callback takes the watch's lock except Close, and TryCancel may run
// under it. Thread-safe.
#ifndef ICAE_DECODER_SERVICE_SERVER_STREAM_WATCH_H_
#define ICAE_DECODER_SERVICE_SERVER_STREAM_WATCH_H_

#include <grpcpp/server_context.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/serving/metrics.h"

namespace icae::decoder {

struct StreamLimits {
  int max_open = 1024;                             // --max_streams
  absl::Duration idle_timeout = absl::Seconds(120);  // --stream_idle_seconds
  absl::Status Validate() const;
};

class StreamWatch {
 public:
  // Adds icae_decoder_streams_open (gauge) and icae_decoder_streams_idle_cancelled_total
  // (counter) to `metrics`, which must outlive the watch. Starts the watchdog thread.
  StreamWatch(const StreamLimits& limits, ServingMetrics* metrics);
  ~StreamWatch();  // Stops the watchdog; every stream must be closed by then.
  StreamWatch(const StreamWatch&) = delete;
  StreamWatch& operator=(const StreamWatch&) = delete;

  // Registers a stream whose write clock is `write_started` (Now() of the write in flight, 0
  // when none; it must live until Close); RESOURCE_EXHAUSTED when max_open streams are open.
  absl::Status Open(grpc::CallbackServerContext* context,
                    const std::atomic<int64_t>* write_started);
  // The stream is done (from OnDone). No-op for a stream that was not opened.
  void Close(grpc::CallbackServerContext* context);

  // The clock of the write clocks: nanoseconds of a monotonic clock, never 0.
  static int64_t Now();

  int open() const;

 private:
  struct Entry {
    const std::atomic<int64_t>* write_started;
    bool cancelled = false;
  };
  void Watchdog();

  const StreamLimits limits_;
  prometheus::Gauge* open_gauge_;
  prometheus::Counter* idle_cancelled_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<grpc::CallbackServerContext*, Entry> streams_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_SERVER_STREAM_WATCH_H_
