// Tiny fake implementations of icae.v1.Encoder and icae.v1.Decoder for testing the serving
// scaffolding for real (gRPC, health, TLS, auth, drain, metrics). They follow the handler pattern
// documented in common/serving/rpc_gate.h, so they double as its worked example.
//
// FakeEncoder.Compress echoes one CompressedSpan per span (id kept, usage.tokens = text bytes).
// A span whose text is "block" holds the call on a worker thread until Release() or until the
// client cancels; "empty request" is INVALID_ARGUMENT. GetInfo returns `name` as `version`.
// FakeDecoder.GenerateStream sends `max_new_tokens` chunks "t0", "t1", ... then finishes.
#ifndef ICAE_TESTS_COMMON_SERVING_FAKE_SERVICES_H_
#define ICAE_TESTS_COMMON_SERVING_FAKE_SERVICES_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/serving/rpc_gate.h"
#include "icae/v1/decoder.grpc.pb.h"
#include "icae/v1/encoder.grpc.pb.h"

namespace icae::testing {

class FakeEncoder final : public v1::Encoder::CallbackService {
 public:
  FakeEncoder(RpcGate* gate, std::string name) : gate_(gate), name_(std::move(name)) {}
  ~FakeEncoder() override {
    Release();
    absl::MutexLock lock(&mu_);
    for (std::thread& t : workers_) t.join();
  }

  // Lets every "block" call finish with OK.
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }
  int calls() const { return calls_.load(); }
  int blocked() const { return blocked_.load(); }

  grpc::ServerUnaryReactor* Compress(grpc::CallbackServerContext* context,
                                     const v1::CompressRequest* request,
                                     v1::CompressResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    RpcScope rpc = gate_->Admit(context, "Compress");
    if (!rpc.ok()) {
      reactor->Finish(rpc.Finish());
      return reactor;
    }
    ++calls_;
    if (request->spans_size() == 0) {
      reactor->Finish(rpc.Finish(absl::InvalidArgumentError("spans: empty request")));
      return reactor;
    }
    bool block = false;
    for (const v1::Span& span : request->spans()) {
      v1::CompressedSpan* out = response->add_spans();
      out->set_id(span.id());
      out->mutable_usage()->set_tokens(static_cast<int32_t>(span.text().size()));
      block = block || span.text() == "block";
    }
    if (!block) {
      reactor->Finish(rpc.Finish(absl::OkStatus()));
      return reactor;
    }
    ++blocked_;
    absl::MutexLock lock(&mu_);
    workers_.emplace_back([this, context, reactor, rpc = std::move(rpc)]() mutable {
      // Hold until released or the call is cancelled (as a real engine would drop the work).
      while (!release_.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
        if (context->IsCancelled()) {
          --blocked_;
          reactor->Finish(rpc.Finish(absl::CancelledError("cancelled")));
          return;
        }
      }
      --blocked_;
      reactor->Finish(rpc.Finish(absl::OkStatus()));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetEncoderInfoRequest* /*request*/,
                                    v1::EncoderInfo* info) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    RpcScope rpc = gate_->Admit(context, "GetInfo");
    if (rpc.ok()) {
      ++calls_;
      info->set_version(name_);
    }
    reactor->Finish(rpc.Finish(rpc.status()));
    return reactor;
  }

 private:
  RpcGate* const gate_;
  const std::string name_;
  std::atomic<int> calls_{0};
  std::atomic<int> blocked_{0};
  absl::Notification release_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

class FakeDecoder final : public v1::Decoder::CallbackService {
 public:
  explicit FakeDecoder(RpcGate* gate) : gate_(gate) {}

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    RpcScope rpc = gate_->Admit(context, "Generate");
    if (rpc.ok()) {
      for (int i = 0; i < request->max_new_tokens(); ++i) {
        absl::StrAppend(response->mutable_text(), "t", i);
        response->add_token_ids(i);
      }
      response->set_finish_reason(v1::LENGTH);
      response->set_request_id(request->request_id());
    }
    reactor->Finish(rpc.Finish(rpc.status()));
    return reactor;
  }

  // One reactor per streaming call, as in gRPC's route_guide callback example: each write is
  // started from OnWriteDone, never blocking inside a reaction.
  class Stream final : public grpc::ServerWriteReactor<v1::GenerateChunk> {
   public:
    Stream(RpcScope rpc, int chunks) : rpc_(std::move(rpc)), chunks_(chunks) {
      if (!rpc_.ok()) {
        Finish(rpc_.Finish());
        return;
      }
      Next();
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(rpc_.Finish(absl::CancelledError("client went away")));
        return;
      }
      Next();
    }
    void OnDone() override { delete this; }

   private:
    void Next() {
      if (sent_ == chunks_) {
        Finish(rpc_.Finish(absl::OkStatus()));
        return;
      }
      chunk_.Clear();
      chunk_.set_text(absl::StrCat("t", sent_));
      chunk_.add_token_ids(sent_);
      if (++sent_ == chunks_) chunk_.set_finish_reason(v1::LENGTH);
      StartWrite(&chunk_);
    }
    RpcScope rpc_;
    const int chunks_;
    int sent_ = 0;
    v1::GenerateChunk chunk_;
  };

  grpc::ServerWriteReactor<v1::GenerateChunk>* GenerateStream(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override {
    return new Stream(gate_->Admit(context, "GenerateStream"), request->max_new_tokens());
  }

  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetDecoderInfoRequest* /*request*/,
                                    v1::DecoderInfo* info) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    RpcScope rpc = gate_->Admit(context, "GetInfo");
    if (rpc.ok()) info->set_version("fake-decoder");
    reactor->Finish(rpc.Finish(rpc.status()));
    return reactor;
  }

 private:
  RpcGate* const gate_;
};

}  // namespace icae::testing

#endif  // ICAE_TESTS_COMMON_SERVING_FAKE_SERVICES_H_
