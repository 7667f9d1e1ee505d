#include "decoder_service/server/generate_reactors.h"

#include <chrono>
#include <utility>

#include "absl/time/clock.h"
#include "common/serving/proto_bytes.h"
#include "decoder_service/server/request_convert.h"

namespace icae::decoder {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

void CancelLink::SetId(uint64_t id) {
  bool cancelled;
  {
    absl::MutexLock lock(&mu_);
    id_ = id;
    cancelled = cancelled_;
  }
  if (cancelled) Cancel();
}

void CancelLink::Cancel() {
  std::optional<uint64_t> id;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    id = id_;
  }
  if (!id) return;
  engine_->Cancel(*id, absl::Now() >= deadline_
                           ? absl::DeadlineExceededError("the call's deadline passed")
                           : absl::CancelledError("the call was cancelled"));
}

// ---- Generate ----

GenerateUnaryReactor::GenerateUnaryReactor(grpc::ByteBuffer* wire, RpcScope rpc, Engine* engine,
                                           absl::Time deadline)
    : wire_(wire), rpc_(std::move(rpc)), cancel_(engine, deadline) {}

GenerateUnaryReactor* GenerateUnaryReactor::Start(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* bytes,
                                                  grpc::ByteBuffer* response, RpcScope rpc,
                                                  const GenerateBackend& backend) {
  const absl::Time deadline = DeadlineOf(context);
  auto* reactor = new GenerateUnaryReactor(response, std::move(rpc), backend.engine, deadline);
  v1::GenerateRequest request;
  absl::Status parsed = reactor->rpc_.ok() ? ParseMessageBytes(*bytes, &request) : absl::OkStatus();
  if (!reactor->rpc_.ok() || !parsed.ok()) {
    reactor->Finish(reactor->rpc_.ok() ? reactor->rpc_.Finish(parsed) : reactor->rpc_.Finish());
    reactor->Unref();  // No engine event will come.
  } else {
    reactor->response_.set_request_id(request.request_id());
    absl::StatusOr<uint64_t> id =
        EnqueueRequest(*backend.engine, request, deadline, backend.max_slot_elements, backend.handles,
                       [reactor](GenerationEvent event) { reactor->OnEvent(std::move(event)); });
    if (id.ok()) {
      reactor->cancel_.SetId(*id);
    } else {
      reactor->Finish(reactor->rpc_.Finish(id.status()));
      reactor->Unref();
    }
  }
  reactor->Unref();
  return reactor;
}

// Runs on the scheduler thread, one event at a time.
void GenerateUnaryReactor::OnEvent(GenerationEvent event) {
  response_.mutable_text()->append(event.text);
  for (int id : event.token_ids) response_.add_token_ids(id);
  if (!event.final) return;
  response_.set_finish_reason(ToProtoFinishReason(event.finish_reason));
  ToProtoUsage(event.usage, response_.mutable_usage());
  absl::Status status = event.status;
  if (status.ok()) status = SerializeMessageBytes(response_, wire_);
  Finish(rpc_.Finish(status));
  Unref();
}

void GenerateUnaryReactor::OnCancel() { cancel_.Cancel(); }
void GenerateUnaryReactor::OnDone() { Unref(); }

void GenerateUnaryReactor::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

// ---- GenerateStream ----

GenerateStreamReactor::GenerateStreamReactor(grpc::CallbackServerContext* context, RpcScope rpc,
                                             Engine* engine, absl::Time deadline)
    : context_(context), cancel_(engine, deadline), rpc_(std::move(rpc)) {}

GenerateStreamReactor* GenerateStreamReactor::Start(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* bytes, RpcScope rpc,
                                                    const GenerateBackend& backend) {
  const absl::Time deadline = DeadlineOf(context);
  auto* reactor = new GenerateStreamReactor(context, std::move(rpc), backend.engine, deadline);
  absl::Status refused;
  {
    absl::MutexLock lock(&reactor->mu_);
    refused = reactor->rpc_.status();
  }
  // The stream cap comes before any parsing or queuing.
  if (refused.ok() && backend.streams != nullptr) {
    refused = backend.streams->Open(context, &reactor->write_started_);
    if (refused.ok()) reactor->watch_ = backend.streams;
  }
  v1::GenerateRequest request;
  if (refused.ok()) refused = ParseMessageBytes(*bytes, &request);
  reactor->request_id_ = request.request_id();
  if (refused.ok()) {
    absl::StatusOr<uint64_t> id =
        EnqueueRequest(*backend.engine, request, deadline, backend.max_slot_elements, backend.handles,
                       [reactor](GenerationEvent event) { reactor->OnEvent(std::move(event)); });
    if (id.ok()) {
      reactor->cancel_.SetId(*id);
    } else {
      refused = id.status();
    }
  }
  if (!refused.ok()) {
    {
      absl::MutexLock lock(&reactor->mu_);
      reactor->final_seen_ = true;
      reactor->final_status_ = refused;
      reactor->Pump();
    }
    reactor->Unref();  // No engine event will come.
  }
  reactor->Unref();
  return reactor;
}

// Runs on the scheduler thread: only buffers and, when idle, starts a write.
void GenerateStreamReactor::OnEvent(GenerationEvent event) {
  const bool final = event.final;
  {
    absl::MutexLock lock(&mu_);
    pending_.mutable_text()->append(event.text);
    for (int id : event.token_ids) pending_.add_token_ids(id);
    has_pending_ = has_pending_ || !event.text.empty() || !event.token_ids.empty();
    if (final) {
      final_seen_ = true;
      final_status_ = event.status;
      if (event.status.ok()) {
        pending_.set_finish_reason(ToProtoFinishReason(event.finish_reason));
        ToProtoUsage(event.usage, pending_.mutable_usage());
        has_pending_ = true;  // The last chunk always goes out, with the finish reason.
      }
    }
    Pump();
  }
  if (final) Unref();
}

void GenerateStreamReactor::Pump() {
  if (finished_ || write_in_flight_) return;
  if (final_seen_ && (!final_status_.ok() || broken_)) {
    finished_ = true;
    Finish(rpc_.Finish(broken_ && final_status_.ok()
                           ? absl::CancelledError("the client stopped reading")
                           : final_status_));
    return;
  }
  if (broken_) return;  // Wait for the engine's final event after the cancel.
  if (has_pending_) {
    pending_.set_request_id(request_id_);
    absl::Status serialized = SerializeMessageBytes(pending_, &writing_);
    pending_.Clear();
    has_pending_ = false;
    if (!serialized.ok()) {
      finished_ = true;
      Finish(rpc_.Finish(serialized));
      return;
    }
    write_in_flight_ = true;
    write_started_.store(StreamWatch::Now(), std::memory_order_relaxed);
    StartWrite(&writing_);
    return;
  }
  if (final_seen_) {
    finished_ = true;
    Finish(rpc_.Finish(absl::OkStatus()));
  }
}

void GenerateStreamReactor::OnWriteDone(bool ok) {
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    write_started_.store(0, std::memory_order_relaxed);
    if (!ok && !broken_) {
      broken_ = true;
      cancel = true;
    }
    Pump();
  }
  if (cancel) cancel_.Cancel();
}

void GenerateStreamReactor::OnCancel() { cancel_.Cancel(); }
void GenerateStreamReactor::OnDone() {
  if (watch_ != nullptr) watch_->Close(context_);
  Unref();
}

void GenerateStreamReactor::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

}  // namespace icae::decoder
