#include "encoder_service/server/compress_reactor.h"

#include <chrono>
#include <utility>

#include "encoder_service/server/proto_convert.h"
#include "encoder_service/server/request_parser.h"
#include "encoder_service/server/response_writer.h"

namespace icae::encoder {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

CompressReactor* CompressReactor::Start(Engine* engine, RpcScope rpc,
                                        grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) {
  auto* reactor = new CompressReactor(engine, std::move(rpc), DeadlineOf(*context), response);
  reactor->Run(*request);
  return reactor;
}

CompressReactor::CompressReactor(Engine* engine, RpcScope rpc, absl::Time deadline,
                                 grpc::ByteBuffer* response)
    : engine_(engine), rpc_(std::move(rpc)), deadline_(deadline), response_(response) {}

void CompressReactor::Run(const grpc::ByteBuffer& bytes) {
  if (!rpc_.ok()) {
    Finish(rpc_.Finish());
    return;
  }
  absl::StatusOr<EncodeRequest> converted;
  {
    v1::CompressRequest request;
    if (absl::Status s = ParseCompressRequest(bytes, &request); !s.ok()) {
      End(s);
      return;
    }
    converted = FromProto(request, deadline_);
  }
  if (!converted.ok()) {
    End(converted.status());
    return;
  }
  handles_ = converted->want_stored;
  absl::StatusOr<RequestId> id = engine_->Enqueue(
      *std::move(converted), [this](absl::StatusOr<EncodeResult> r) { Complete(std::move(r)); });
  if (!id.ok()) {
    End(id.status());
    return;
  }
  bool cancel_now;
  {
    absl::MutexLock lock(&mu_);
    id_ = *id;
    cancel_now = cancelled_;  // OnCancel ran before the id was known
  }
  if (cancel_now) engine_->Cancel(*id, absl::CancelledError("the call was cancelled"));
}

void CompressReactor::OnCancel() {
  const bool deadline_passed = absl::Now() >= deadline_;
  std::optional<RequestId> id;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    id = id_;
  }
  if (!id.has_value()) return;
  engine_->Cancel(*id, deadline_passed ? absl::DeadlineExceededError("the call's deadline passed")
                                       : absl::CancelledError("the call was cancelled"));
}

void CompressReactor::Complete(absl::StatusOr<EncodeResult> result) {
  if (!result.ok()) {
    End(result.status());
    return;
  }
  // The slot payloads go out by reference (response_writer.h): no copy after the executor's.
  WriteCompressResponse(*result, engine_->model_info(), handles_, response_);
  End(absl::OkStatus());
}

void CompressReactor::End(const absl::Status& status) { Finish(rpc_.Finish(status)); }

}  // namespace icae::encoder
