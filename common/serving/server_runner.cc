#include "common/serving/server_runner.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/serving/server_credentials.h"

namespace icae {
namespace {

// After the drain wait, gRPC gets this long to flush finished responses before it cancels calls.
constexpr auto kShutdownGrace = std::chrono::seconds(1);

void PrintLine(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

absl::StatusOr<std::vector<std::string>> MethodNames(const std::vector<std::string>& services) {
  std::vector<std::string> names;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const std::string& service : services) {
    const google::protobuf::ServiceDescriptor* descriptor = pool->FindServiceByName(service);
    if (descriptor == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("gRPC service '", service, "' is unknown (its generated code not linked?)"));
    }
    for (int i = 0; i < descriptor->method_count(); ++i) {
      names.push_back(descriptor->method(i)->name());
    }
  }
  return names;
}

// Removes the reflection plugin (registered process-wide) from one server's builder.
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return p->name() == "proto_server_reflection";
                                  }),
                   plugins->end());
  }
};

void SetHealth(grpc::Server* server, const std::vector<std::string>& services, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  for (const std::string& service : services) health->SetServingStatus(service, serving);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerRunner>> ServerRunner::Create(const ServerFlags& flags,
                                                                   ServerRunnerOptions options) {
  RETURN_IF_ERROR(ValidateTransportFlags(flags));
  if (options.metrics_service.empty()) {
    return absl::InvalidArgumentError("ServerRunnerOptions.metrics_service is empty");
  }
  std::unique_ptr<ServerRunner> runner(new ServerRunner());
  runner->flags_ = flags;
  ASSIGN_OR_RETURN(runner->listen_, ParseHostPort(flags.listen, "listen"));
  ASSIGN_OR_RETURN(runner->credentials_, MakeServerCredentials(flags));
  std::unique_ptr<BearerAuth> auth;
  if (!flags.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(auth, BearerAuth::FromFile(flags.auth_token_file));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> methods, MethodNames(options.grpc_services));
  runner->metrics_ = ServingMetrics::Create(options.metrics_service, methods);
  runner->gate_ = std::make_unique<RpcGate>(runner->metrics_.get(), std::move(auth));
  runner->options_ = std::move(options);
  return runner;
}

ServerRunner::~ServerRunner() {
  bool running;
  {
    absl::MutexLock lock(&mu_);
    running = started_ && !stopped_;
  }
  if (running) Stop();
}

absl::Status ServerRunner::Start(const std::vector<grpc::Service*>& services) {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("ServerRunner::Start called twice");
  }
  if (!options_.effective_flags.empty()) {
    ICAE_LOG(INFO) << "effective options: " << options_.effective_flags;
  }
  if (!flags_.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(HostPort metrics_at, ParseHostPort(flags_.metrics_listen, "metrics_listen"));
    RETURN_IF_ERROR(metrics_->StartHttp(metrics_at.ToString()));
    metrics_at.port = metrics_->http_port();
    PrintLine(absl::StrCat("metrics on ", metrics_at.ToString()));
  }

  grpc::EnableDefaultHealthCheckService(true);
  static std::once_flag reflection_once;
  std::call_once(reflection_once,
                 [] { grpc::reflection::InitProtoReflectionServerBuilderPlugin(); });

  grpc::ServerBuilder builder;
  if (!ReflectionEnabled(flags_)) builder.SetOption(std::make_unique<WithoutReflection>());
  int port = 0;
  builder.AddListeningPort(listen_.ToString(), credentials_, &port);
  // gRPC sets SO_REUSEPORT by default, which would let two servers share a port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(flags_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(flags_.max_message_bytes));
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("--listen: cannot serve on ", flags_.listen,
                                               " (address in use or not local?)"));
  }
  // The default health service answers SERVING for "" from birth; flip it before anyone can know
  // the port from our stdout line.
  SetHealth(server.get(), options_.grpc_services, false);

  if (options_.handle_signals) {
    signal_watch_ = SignalWatch::Subscribe([this](int) { RequestDrain(); });
  }
  HostPort bound = listen_;
  bound.port = port;
  bool drain_early;
  {
    absl::MutexLock lock(&mu_);
    server_ = std::move(server);
    port_ = port;
    started_ = true;
    drain_early = drain_requested_;
  }
  // A signal during Start found no server to mark; do it now.
  if (drain_early) server_->GetHealthCheckService()->Shutdown();
  ICAE_LOG(INFO) << "gRPC on " << bound.ToString() << " ("
                 << (flags_.tls_cert.empty()
                         ? "insecure"
                         : (flags_.tls_client_ca.empty() ? "TLS" : "mutual TLS"))
                 << (flags_.auth_token_file.empty() ? "" : ", bearer token") << ")";
  PrintLine(absl::StrCat("listening on ", bound.ToString()));
  return absl::OkStatus();
}

int ServerRunner::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

std::string ServerRunner::address() const {
  absl::MutexLock lock(&mu_);
  if (port_ == 0) return "";
  HostPort bound = listen_;
  bound.port = port_;
  return bound.ToString();
}

void ServerRunner::SetServing() {
  absl::MutexLock lock(&mu_);
  if (drain_requested_) return;
  gate_->SetServing();
  if (server_ != nullptr) SetHealth(server_.get(), options_.grpc_services, true);
  ICAE_LOG(INFO) << "serving";
}

bool ServerRunner::drain_requested() const {
  absl::MutexLock lock(&mu_);
  return drain_requested_;
}

void ServerRunner::RequestDrain() {
  {
    absl::MutexLock lock(&mu_);
    if (drain_requested_) {
      ICAE_LOG(INFO) << "drain already in progress; cutting it short";
      gate_->CutDrainShort();
      return;
    }
    drain_requested_ = true;
    drain_start_ = absl::Now();
    gate_->StartDraining();
    if (server_ != nullptr) {
      SetHealth(server_.get(), options_.grpc_services, false);
      // Later SetServingStatus calls are ignored: NOT_SERVING until exit.
      server_->GetHealthCheckService()->Shutdown();
    }
  }
  ICAE_LOG(INFO) << "draining: up to " << flags_.drain_seconds << " s for in-flight calls";
  if (options_.on_drain) options_.on_drain();
}

absl::Status ServerRunner::Wait() {
  absl::Time deadline;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&drain_requested_));
    if (shutdown_started_) {
      mu_.Await(absl::Condition(&stopped_));
      return absl::OkStatus();
    }
    shutdown_started_ = true;
    deadline = drain_start_ + absl::Seconds(flags_.drain_seconds);
  }
  if (server_ != nullptr) {
    if (!gate_->WaitIdle(deadline)) {
      ICAE_LOG(WARNING) << "drain ended with " << gate_->inflight()
                        << " calls in flight; cancelling them";
    }
    server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
    server_->Wait();
  }
  signal_watch_.reset();
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  ICAE_LOG(INFO) << "server stopped";
  return absl::OkStatus();
}

void ServerRunner::Stop() {
  RequestDrain();
  gate_->CutDrainShort();
  Wait().IgnoreError();
}

}  // namespace icae
