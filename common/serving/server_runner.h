// Builds, runs and drains the gRPC server of a service (encoder or decoder) from ServerFlags.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ServerRunner> runner,
//                    ServerRunner::Create(server_flags, {.metrics_service = "encoder",
//                                                        .grpc_services = {"icae.v1.Encoder"},
//                                                        .effective_flags = flags.Effective()}));
//   EncoderService service(&runner->gate(), &runner->metrics());  // handlers call gate.Admit
//   RETURN_IF_ERROR(runner->Start({&service}));  // serving health NOT_SERVING; prints the lines
//   ... load the model (calls get UNAVAILABLE meanwhile) ...
//   runner->metrics().SetInfo({...});
//   runner->SetServing();                         // health SERVING, the gate admits calls
//   return runner->Wait();                        // returns after SIGTERM/SIGINT and the drain
//
// What Start sets up: the listening port (port 0 -> a free one; stdout gets exactly one line
// "listening on HOST:PORT", flushed), max receive/send message size = --max_message_bytes,
// insecure / TLS / mTLS credentials, grpc.health.v1 for "" and each of `grpc_services`,
// server reflection, SO_REUSEPORT off (a busy port is an error), and, with --metrics_listen, the
// Prometheus endpoint ("metrics on HOST:PORT" on stdout). The effective options are logged once.
//
// Drain (first SIGTERM/SIGINT, or RequestDrain()): health NOT_SERVING at once, the gate refuses new
// calls with UNAVAILABLE, `on_drain` runs; Wait() then waits up to --drain_seconds for the
// admitted calls to finish, shuts the server down (calls still running are cancelled after 1 s
// more) and returns OK, so main() exits 0. A second signal cuts the wait short.
//
// Lifetimes: services (and whatever their handlers use) are usually declared after the runner,
// so they are destroyed first: call Wait() or Stop() before leaving their scope (also on error
// paths); after either returns no handler runs. The destructor's Stop() is only a backstop.
// Every reactor must eventually Finish (also when cancelled), or gRPC's shutdown waits for it.
// RpcScopes must not outlive the runner.
// Thread-safety: Create/Start/Wait from the main thread; SetServing, RequestDrain and the
// accessors from any thread.
#ifndef ICAE_COMMON_SERVING_SERVER_RUNNER_H_
#define ICAE_COMMON_SERVING_SERVER_RUNNER_H_

#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/serving/metrics.h"
#include "common/serving/rpc_gate.h"
#include "common/serving/server_flags.h"
#include "common/serving/signal_watch.h"

namespace icae {

struct ServerRunnerOptions {
  // "encoder" or "decoder": metric names are icae_<metrics_service>_*.
  std::string metrics_service;
  // Full names of the services that will be registered ("icae.v1.Encoder"): the health service
  // names besides "", and the source of the `method` label values. Their generated code must be
  // linked in.
  std::vector<std::string> grpc_services;
  // FlagSet::Effective(), logged once by Start.
  std::string effective_flags;
  // Runs once when a drain starts (on the signal-watcher thread, or the RequestDrain caller):
  // tell the engine to stop taking work. Must be quick and must not block.
  std::function<void()> on_drain;
  // Catch SIGTERM/SIGINT (process-wide, see signal_watch.h). Off in tests that run many servers.
  bool handle_signals = true;
};

class ServerRunner {
 public:
  // Validates the transport flags, reads the TLS files and the token, creates the metrics and the
  // gate. InvalidArgument / NotFound name the flag.
  static absl::StatusOr<std::unique_ptr<ServerRunner>> Create(const ServerFlags& flags,
                                                              ServerRunnerOptions options);
  // Stops (as Stop()) when still running.
  ~ServerRunner();
  ServerRunner(const ServerRunner&) = delete;
  ServerRunner& operator=(const ServerRunner&) = delete;

  // Handlers call gate().Admit(...) first; services add their own families to metrics().
  RpcGate& gate() { return *gate_; }
  ServingMetrics& metrics() { return *metrics_; }

  // Starts serving `services` (not owned) with health NOT_SERVING. Unavailable when the port
  // cannot be bound. Once only.
  absl::Status Start(const std::vector<grpc::Service*>& services);

  // Bound gRPC port and "HOST:PORT" as printed; 0 / "" before Start.
  int port() const;
  std::string address() const;
  // Bound metrics HTTP port; 0 when disabled or before Start.
  int metrics_port() const { return metrics_->http_port(); }

  // The model is ready: health SERVING, the gate admits calls. No effect once draining.
  void SetServing();
  // Starts a drain as SIGTERM would; does not block. A second call cuts the drain wait short.
  void RequestDrain();
  bool drain_requested() const;
  // Blocks until a drain is requested, then drains and shuts down; OK when the server stopped
  // (also when the drain deadline cut calls off: they are logged). Returns at once when the server
  // already stopped.
  absl::Status Wait();
  // Drains without waiting for in-flight calls beyond gRPC's 1 s shutdown grace, then returns.
  void Stop();

 private:
  ServerRunner() = default;

  ServerFlags flags_;
  ServerRunnerOptions options_;
  HostPort listen_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::unique_ptr<ServingMetrics> metrics_;
  std::unique_ptr<RpcGate> gate_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool drain_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_start_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<SignalWatch> signal_watch_;  // main thread only
  std::unique_ptr<grpc::Server> server_;       // set once under mu_ in Start; destroyed first
};

}  // namespace icae

#endif  // ICAE_COMMON_SERVING_SERVER_RUNNER_H_
