#include "common/serving/signal_watch.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/base/logging.h"

namespace icae {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT};
constexpr unsigned char kQuit = 0;

std::atomic<int> g_write_fd{-1};

void OnSignal(int signo) {
  const int saved_errno = errno;
  const int fd = g_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(signo);
    // Non-blocking: if the pipe is full, signals are already pending and this one can be dropped.
    ssize_t ignored = ::write(fd, &byte, 1);
    (void)ignored;
  }
  errno = saved_errno;
}

// All state of the process-wide watcher. `lifecycle` serializes subscribe/unsubscribe (including
// thread start and join); `callbacks_mu` guards the callback map and is held while dispatching,
// which is what guarantees a removed callback is never running after removal.
struct Hub {
  absl::Mutex lifecycle;
  absl::Mutex callbacks_mu;
  std::map<uint64_t, std::function<void(int)>> callbacks ABSL_GUARDED_BY(callbacks_mu);
  uint64_t next_id ABSL_GUARDED_BY(lifecycle) = 1;
  int read_fd ABSL_GUARDED_BY(lifecycle) = -1;
  std::thread thread ABSL_GUARDED_BY(lifecycle);
  struct sigaction previous[2] ABSL_GUARDED_BY(lifecycle);
};

Hub& GetHub() {
  static Hub* hub = new Hub();
  return *hub;
}

void WatchLoop(Hub* hub, int read_fd) {
  while (true) {
    unsigned char byte;
    const ssize_t n = ::read(read_fd, &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || byte == kQuit) return;
    ICAE_LOG(INFO) << "received signal " << static_cast<int>(byte);
    absl::MutexLock lock(&hub->callbacks_mu);
    for (auto& [id, callback] : hub->callbacks) callback(byte);
  }
}

}  // namespace

std::unique_ptr<SignalWatch> SignalWatch::Subscribe(std::function<void(int)> on_signal) {
  Hub& hub = GetHub();
  absl::MutexLock lifecycle(&hub.lifecycle);
  const uint64_t id = hub.next_id++;
  bool first;
  {
    absl::MutexLock lock(&hub.callbacks_mu);
    first = hub.callbacks.empty();
    hub.callbacks.emplace(id, std::move(on_signal));
  }
  if (first) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      ICAE_LOG(ERROR) << "pipe2 failed; SIGTERM/SIGINT keep their default action";
      return std::unique_ptr<SignalWatch>(new SignalWatch(id));
    }
    ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
    hub.read_fd = fds[0];
    g_write_fd.store(fds[1]);
    hub.thread = std::thread(WatchLoop, &hub, fds[0]);
    struct sigaction action = {};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int i = 0; i < 2; ++i) ::sigaction(kSignals[i], &action, &hub.previous[i]);
  }
  return std::unique_ptr<SignalWatch>(new SignalWatch(id));
}

SignalWatch::~SignalWatch() {
  Hub& hub = GetHub();
  absl::MutexLock lifecycle(&hub.lifecycle);
  bool last;
  {
    absl::MutexLock lock(&hub.callbacks_mu);
    hub.callbacks.erase(id_);
    last = hub.callbacks.empty();
  }
  if (!last || hub.read_fd < 0) return;
  for (int i = 0; i < 2; ++i) ::sigaction(kSignals[i], &hub.previous[i], nullptr);
  const int write_fd = g_write_fd.exchange(-1);
  const unsigned char quit = kQuit;
  ssize_t ignored = ::write(write_fd, &quit, 1);
  (void)ignored;
  hub.thread.join();
  ::close(write_fd);
  ::close(hub.read_fd);
  hub.read_fd = -1;
}

}  // namespace icae
