// Minimal leveled logging to stderr: one line per message, with time and severity.
//   ICAE_LOG(INFO) << "listening on " << address;
//   ICAE_LOG_EVERY_N_SEC(WARNING, 10) << "store down: " << status;  // at most once per 10 s here
// Thread-safe: each message is written with a single write.
#ifndef ICAE_COMMON_BASE_LOGGING_H_
#define ICAE_COMMON_BASE_LOGGING_H_

#include <atomic>
#include <cstdint>
#include <sstream>

namespace icae {

enum class LogSeverity { kInfo = 0, kWarning = 1, kError = 2, kFatal = 3 };

// Messages below this severity are dropped (default kInfo; ICAE_LOG_LEVEL=warning|error raises it).
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

namespace internal {
class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// True at most once per `seconds` across threads (the first call included): for one call site
// that may fire on every request.
class LogRateLimiter {
 public:
  explicit LogRateLimiter(double seconds) : period_ns_(static_cast<int64_t>(seconds * 1e9)) {}
  bool ShouldLog();

 private:
  const int64_t period_ns_;
  std::atomic<int64_t> next_ns_{0};
};
}  // namespace internal
}  // namespace icae

#define ICAE_LOG_SEVERITY_INFO ::icae::LogSeverity::kInfo
#define ICAE_LOG_SEVERITY_WARNING ::icae::LogSeverity::kWarning
#define ICAE_LOG_SEVERITY_ERROR ::icae::LogSeverity::kError
#define ICAE_LOG_SEVERITY_FATAL ::icae::LogSeverity::kFatal

#define ICAE_LOG(severity)                                                        \
  if (ICAE_LOG_SEVERITY_##severity < ::icae::MinLogSeverity()) {                  \
  } else                                                                          \
    ::icae::internal::LogMessage(ICAE_LOG_SEVERITY_##severity, __FILE__, __LINE__) \
        .stream()

#define ICAE_LOG_CONCAT_INNER(a, b) a##b
#define ICAE_LOG_CONCAT(a, b) ICAE_LOG_CONCAT_INNER(a, b)
#define ICAE_LOG_EVERY_N_SEC(severity, seconds)                                            \
  static ::icae::internal::LogRateLimiter ICAE_LOG_CONCAT(icae_log_limiter_, __LINE__)( \
      seconds);                                                                          \
  if (!ICAE_LOG_CONCAT(icae_log_limiter_, __LINE__).ShouldLog()) {                      \
  } else                                                                                 \
    ICAE_LOG(severity)

#endif  // ICAE_COMMON_BASE_LOGGING_H_
