#include "common/base/status_macros.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::StatusIs;

absl::StatusOr<std::unique_ptr<int>> MakeInt(int value) {
  if (value < 0) return absl::InvalidArgumentError("negative");
  return std::make_unique<int>(value);
}

absl::Status Check(int value, int* calls) {
  ++*calls;
  return value < 0 ? absl::OutOfRangeError("below zero") : absl::OkStatus();
}

absl::StatusOr<int> Sum(int a, int b, int* calls) {
  RETURN_IF_ERROR(Check(a, calls));
  RETURN_IF_ERROR(Check(b, calls));
  ASSIGN_OR_RETURN(std::unique_ptr<int> x, MakeInt(a));  // Move-only values work.
  int y = 0;
  ASSIGN_OR_RETURN(y, [&]() -> absl::StatusOr<int> { return *MakeInt(b).value() + 0; }());
  return *x + y;
}

TEST(StatusMacrosTest, PropagateAndAssign) {
  int calls = 0;
  EXPECT_EQ(*Sum(2, 3, &calls), 5);
  EXPECT_EQ(calls, 2);
  calls = 0;
  EXPECT_THAT(Sum(-1, 3, &calls), StatusIs(absl::StatusCode::kOutOfRange, "below zero"));
  EXPECT_EQ(calls, 1);  // Stopped at the first error.
}

absl::StatusOr<int> Twice(int value) {
  ASSIGN_OR_RETURN(auto p, MakeInt(value));
  ASSIGN_OR_RETURN(auto q, MakeInt(value));  // Two on one function: distinct temporaries.
  return *p + *q;
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesTheError) {
  EXPECT_EQ(*Twice(4), 8);
  EXPECT_THAT(Twice(-4), StatusIs(absl::StatusCode::kInvalidArgument, "negative"));
}

}  // namespace
}  // namespace icae
