// Test helpers: Status matchers (Debian's abseil ships none) and scratch directories.
#ifndef ICAE_TESTS_UTIL_TEST_UTIL_H_
#define ICAE_TESTS_UTIL_TEST_UTIL_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace icae::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// EXPECT_THAT(s, IsOk());
MATCHER(IsOk, "is OK") {
  const absl::Status& status = ::icae::testing::GetStatus(arg);
  if (!status.ok()) *result_listener << "status: " << status;
  return status.ok();
}

// EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype")));
// `message_matcher` is a string matcher or a plain string (exact match).
MATCHER_P2(StatusIs, code, message_matcher,
           std::string(negation ? "doesn't have" : "has") + " code " +
               absl::StatusCodeToString(code) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status& status = ::icae::testing::GetStatus(arg);
  *result_listener << "status: " << status;
  return status.code() == code &&
         ::testing::Matches(message_matcher)(std::string(status.message()));
}

// A fresh directory under $TEST_TMPDIR or /tmp, removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Resident memory of a process from /proc/PID/status: VmRSS now, and VmHWM, its peak since the
// start or since ResetPeakRss (which writes 5 to /proc/PID/clear_refs; Linux >= 4.0). Bytes.
absl::StatusOr<int64_t> CurrentRssBytes(int pid);
absl::StatusOr<int64_t> PeakRssBytes(int pid);
absl::Status ResetPeakRss(int pid);

}  // namespace icae::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::icae::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::icae::testing::IsOk())

#endif  // ICAE_TESTS_UTIL_TEST_UTIL_H_
