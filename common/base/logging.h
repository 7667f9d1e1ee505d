// Minimal leveled logging to stderr: one line per message, with time and severity.
//   ICAE_LOG(INFO) << "listening on " << address;
// Thread-safe: each message is written with a single write.
#ifndef ICAE_COMMON_BASE_LOGGING_H_
#define ICAE_COMMON_BASE_LOGGING_H_

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

#endif  // ICAE_COMMON_BASE_LOGGING_H_
