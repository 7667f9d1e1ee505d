#include "common/serving/status_grpc.h"

#include <gtest/gtest.h>

#include <string>

namespace icae {
namespace {

struct Row {
  absl::StatusCode absl_code;
  grpc::StatusCode grpc_code;
  const char* name;
};

// The mapping table, written out by name on both sides.
const Row kTable[] = {
    {absl::StatusCode::kOk, grpc::StatusCode::OK, "OK"},
    {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED, "CANCELLED"},
    {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN, "UNKNOWN"},
    {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
    {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
    {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
    {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS"},
    {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"},
    {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED,
     "RESOURCE_EXHAUSTED"},
    {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION,
     "FAILED_PRECONDITION"},
    {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED, "ABORTED"},
    {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE, "OUT_OF_RANGE"},
    {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
    {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL, "INTERNAL"},
    {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
    {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS, "DATA_LOSS"},
    {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
};

TEST(StatusGrpcTest, EveryCodeMapsToItsNamesakeBothWaysKeepingTheMessage) {
  ASSERT_EQ(std::size(kTable), static_cast<size_t>(kNumGrpcCodes));
  for (const Row& row : kTable) {
    SCOPED_TRACE(row.name);
    const std::string message = row.absl_code == absl::StatusCode::kOk ? "" : "spans[3]: too long";
    const grpc::Status g = ToGrpcStatus(absl::Status(row.absl_code, message));
    EXPECT_EQ(g.error_code(), row.grpc_code);
    EXPECT_EQ(g.error_message(), message);
    const absl::Status a = FromGrpcStatus(grpc::Status(row.grpc_code, message));
    EXPECT_EQ(a.code(), row.absl_code);
    EXPECT_EQ(std::string(a.message()), message);
    EXPECT_EQ(GrpcCodeName(row.grpc_code), row.name);
  }
}

TEST(StatusGrpcTest, OutOfRangeCodesBecomeUnknownWithMessage) {
  const grpc::Status g = ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(42), "odd"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(g.error_message(), "odd");
  const absl::Status a = FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(20), "odd"));
  EXPECT_EQ(a.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(a.message(), "odd");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(20)), "UNKNOWN");
}

TEST(StatusGrpcTest, OkStaysOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

}  // namespace
}  // namespace icae
