#include "tests/util/test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace icae::testing {

ScratchDir::ScratchDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/icae_test_XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

// The value of `key` ("VmRSS:") in /proc/PID/status, in bytes (the file says kB).
absl::StatusOr<int64_t> StatusField(int pid, const std::string& key) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(path + ": cannot read");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream fields(line.substr(key.size()));
    int64_t kib = -1;
    fields >> kib;
    if (kib < 0) return absl::DataLossError(path + ": unreadable " + key);
    return kib * 1024;
  }
  return absl::NotFoundError(path + ": no " + key);
}

}  // namespace

absl::StatusOr<int64_t> CurrentRssBytes(int pid) { return StatusField(pid, "VmRSS:"); }
absl::StatusOr<int64_t> PeakRssBytes(int pid) { return StatusField(pid, "VmHWM:"); }

absl::Status ResetPeakRss(int pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/clear_refs";
  std::ofstream out(path);
  out << "5";
  out.flush();
  if (!out) return absl::PermissionDeniedError(path + ": cannot write");
  return absl::OkStatus();
}

}  // namespace icae::testing
