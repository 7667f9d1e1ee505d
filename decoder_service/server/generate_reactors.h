// The reactors of Decoder.Generate (unary) and Decoder.GenerateStream (server streaming).
//
// Both hand the request to the engine and receive its events on the scheduler thread, which they
// never block: the unary reactor accumulates the answer and finishes on the final event; the
// stream reactor coalesces events into one pending chunk and writes one chunk at a time, starting
// the next write from OnWriteDone (a slow reader makes chunks grow, never queue up: the buffer is
// bounded by the request's own output). A client that cancels, or whose deadline passes, cancels
// the request in the engine (it stops within one decode step); the deadline is also given to the
// engine. Each reactor deletes itself once gRPC is done with it and the engine has sent its final
// event.
#ifndef ICAE_DECODER_SERVICE_SERVER_GENERATE_REACTORS_H_
#define ICAE_DECODER_SERVICE_SERVER_GENERATE_REACTORS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/serving/rpc_gate.h"
#include "decoder_service/engine/engine.h"
#include "decoder_service/server/slot_handles.h"
#include "decoder_service/server/stream_watch.h"
#include "icae/v1/decoder.pb.h"

namespace icae::decoder {

// What the reactors need from the service (set once the model is loaded).
struct GenerateBackend {
  Engine* engine = nullptr;
  int64_t max_slot_elements = 0;
  StreamWatch* streams = nullptr;  // Caps and watches GenerateStream calls (null: unbounded).
  const SlotHandleFetcher* handles = nullptr;  // The shared slot store (null: no handles).
};

// Links a reactor's request id in the engine with gRPC's OnCancel, which may come before the id
// is known. Thread-safe.
class CancelLink {
 public:
  CancelLink(Engine* engine, absl::Time deadline) : engine_(engine), deadline_(deadline) {}
  // The request was enqueued as `id`; cancels it at once if the call was cancelled meanwhile.
  void SetId(uint64_t id);
  // The call was cancelled (client gone, deadline passed or the server shutting down).
  void Cancel();

 private:
  Engine* const engine_;
  const absl::Time deadline_;
  absl::Mutex mu_;
  std::optional<uint64_t> id_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class GenerateUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  // Starts the call on the request's raw bytes (parsed here: a bad request is INVALID_ARGUMENT);
  // the reactor owns itself from here on and serializes its answer into `response`.
  static GenerateUnaryReactor* Start(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request, grpc::ByteBuffer* response,
                                     RpcScope rpc, const GenerateBackend& backend);
  void OnCancel() override;
  void OnDone() override;

 private:
  GenerateUnaryReactor(grpc::ByteBuffer* wire, RpcScope rpc, Engine* engine, absl::Time deadline);
  void OnEvent(GenerationEvent event);
  void Unref();

  grpc::ByteBuffer* const wire_;  // gRPC's response bytes, filled at the end.
  v1::GenerateResponse response_;
  RpcScope rpc_;
  CancelLink cancel_;
  std::atomic<int> refs_{3};  // OnDone, Start, the engine's final event.
};

class GenerateStreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // As GenerateUnaryReactor::Start; each chunk is serialized before its write.
  static GenerateStreamReactor* Start(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request, RpcScope rpc,
                                      const GenerateBackend& backend);
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  GenerateStreamReactor(grpc::CallbackServerContext* context, RpcScope rpc, Engine* engine,
                        absl::Time deadline);
  void OnEvent(GenerationEvent event);
  // Starts the next write or finishes the call; needs mu_ and no write in flight.
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref();

  grpc::CallbackServerContext* const context_;
  StreamWatch* watch_ = nullptr;  // Set in Start when the watch admitted the stream.
  std::atomic<int64_t> write_started_{0};  // StreamWatch's write clock: 0 = no write in flight.
  std::string request_id_;  // Set in Start before any event can come.
  CancelLink cancel_;
  absl::Mutex mu_;
  RpcScope rpc_ ABSL_GUARDED_BY(mu_);
  v1::GenerateChunk pending_ ABSL_GUARDED_BY(mu_);  // Coalesced events not yet written.
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer writing_ ABSL_GUARDED_BY(mu_);  // The serialized chunk gRPC is writing.
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool final_seen_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // A write failed: the client is gone.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> refs_{3};  // OnDone, Start, the engine's final event.
};

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_SERVER_GENERATE_REACTORS_H_
