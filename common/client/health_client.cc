#include "common/client/health_client.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/serving/status_grpc.h"

namespace icae {
namespace {

using google::protobuf::internal::WireFormatLite;

// HealthCheckRequest { string service = 1; }
std::string EncodeRequest(absl::string_view service) {
  std::string bytes;
  if (service.empty()) return bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream out(&stream);
  WireFormatLite::WriteString(1, std::string(service), &out);
  return bytes;
}

// HealthCheckResponse { ServingStatus status = 1; }; unknown fields are skipped.
absl::StatusOr<HealthState> DecodeResponse(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  uint32_t status = 0;
  while (uint32_t tag = in.ReadTag()) {
    if (tag == WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT)) {
      if (!in.ReadVarint32(&status)) break;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return absl::DataLossError("malformed HealthCheckResponse");
    }
  }
  if (status > 3) return HealthState::kUnknown;
  return static_cast<HealthState>(status);
}

}  // namespace

absl::string_view HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kServing:
      return "SERVING";
    case HealthState::kNotServing:
      return "NOT_SERVING";
    case HealthState::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    default:
      return "UNKNOWN";
  }
}

absl::StatusOr<HealthState> CheckHealth(const Connection& connection, absl::string_view service,
                                        absl::Duration timeout) {
  grpc::GenericStub stub(connection.channel());
  grpc::ClientContext context;
  connection.PrepareContext(&context, timeout);
  const std::string request_bytes = EncodeRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::DataLossError("unreadable health response");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return DecodeResponse(bytes);
}

absl::Status WaitForServing(const Connection& connection, absl::string_view service,
                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no answer";
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    absl::StatusOr<HealthState> state =
        CheckHealth(connection, service, std::min(left, absl::Seconds(2)));
    if (state.ok() && *state == HealthState::kServing) return absl::OkStatus();
    last = state.ok() ? std::string(HealthStateName(*state)) : state.status().ToString();
    absl::SleepFor(std::min(absl::Milliseconds(50), deadline - absl::Now()));
  }
  return absl::DeadlineExceededError(absl::StrCat("health of '", service, "' on ",
                                                  connection.target(), " not SERVING after ",
                                                  absl::FormatDuration(timeout), ": ", last));
}

}  // namespace icae
