// Helpers of the service benchmarks (encoder and decoder): a server binary as a child process, a
// Prometheus scrape, and latency quantiles.
#ifndef ICAE_TOOLS_BENCH_BENCH_UTIL_H_
#define ICAE_TOOLS_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"

namespace icae::bench {

// A child process whose stdout is read until "listening on" / "metrics on"; SIGTERM and reaped
// on destruction.
class ChildServer {
 public:
  static absl::StatusOr<std::unique_ptr<ChildServer>> Start(const std::string& binary,
                                                            const std::vector<std::string>& args,
                                                            const std::string& log_path);
  ~ChildServer();
  const std::string& address() const { return address_; }
  int metrics_port() const { return metrics_port_; }
  // Minor page faults of the child so far (/proc/PID/stat), -1 when unreadable.
  int64_t MinorFaults() const;

 private:
  ChildServer() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  int metrics_port_ = 0;
};

// GET http://127.0.0.1:port/metrics; value of an unlabelled sample (or -1).
absl::StatusOr<std::string> ScrapeMetrics(int port);
double SampleValue(const std::string& text, const std::string& name);

// The q-quantile (0..1) of `values` (nearest rank); 0 when empty.
double Quantile(std::vector<double> values, double q);

}  // namespace icae::bench

#endif  // ICAE_TOOLS_BENCH_BENCH_UTIL_H_
