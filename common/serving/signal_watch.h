// Process-wide SIGTERM / SIGINT dispatch without work in a signal handler.
//
// While at least one SignalWatch lives, SIGTERM and SIGINT are caught by a handler that only
// writes the signal number to a pipe (self-pipe trick); a watcher thread reads it and calls every
// live watch's callback, in subscription order. When the last watch goes, the previous signal
// dispositions are restored. Callbacks run on the watcher thread and must be quick and must not
// destroy a SignalWatch. After ~SignalWatch returns its callback is not running and never will.
#ifndef ICAE_COMMON_SERVING_SIGNAL_WATCH_H_
#define ICAE_COMMON_SERVING_SIGNAL_WATCH_H_

#include <cstdint>
#include <functional>
#include <memory>

namespace icae {

class SignalWatch {
 public:
  // Never null; installs the handlers on the first live watch.
  static std::unique_ptr<SignalWatch> Subscribe(std::function<void(int signo)> on_signal);
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

 private:
  explicit SignalWatch(uint64_t id) : id_(id) {}
  uint64_t id_;
};

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_SIGNAL_WATCH_H_
