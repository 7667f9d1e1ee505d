// The runner for real on 127.0.0.1: listening line, health, message size, TLS/mTLS, bearer
// token, reflection, drain (programmatic and SIGTERM), metrics over HTTP.
#include "common/serving/server_runner.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <signal.h>

#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/client/encoder_client.h"
#include "common/client/health_client.h"
#include "tests/common/serving/serving_test_util.h"
#include "common/base/status_macros.h"
#include "tests/util/test_util.h"

namespace icae::testing {
namespace {

using ::testing::HasSubstr;

v1::CompressRequest OneSpan(const std::string& text) {
  v1::CompressRequest request;
  v1::Span* span = request.add_spans();
  span->set_id("doc-1");
  span->set_text(text);
  return request;
}

absl::StatusOr<EncoderClient> Client(const ClientOptions& options) {
  return EncoderClient::Create(options);
}

// Polls until `predicate` holds or 10 s pass.
bool Eventually(const std::function<bool()>& predicate) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (predicate()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return predicate();
}

TEST(ServerRunnerTest, PrintsOneListeningLineWithTheBoundPortAndAnswers) {
  ServerFlags flags = LoopbackFlags();
  flags.metrics_listen = "127.0.0.1:0";
  ::testing::internal::CaptureStdout();
  absl::StatusOr<std::unique_ptr<FakeServer>> server = StartFakeServer(flags, "A");
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_OK(server);
  ServerRunner& runner = *(*server)->runner;
  ASSERT_GT(runner.port(), 0);
  ASSERT_GT(runner.metrics_port(), 0);
  EXPECT_EQ(out, absl::StrCat("metrics on 127.0.0.1:", runner.metrics_port(),
                              "\nlistening on 127.0.0.1:", runner.port(), "\n"));
  ASSERT_OK_AND_ASSIGN(EncoderClient client, Client(ClientFor(runner)));
  absl::StatusOr<v1::CompressResponse> response = client.Compress(OneSpan("hello"));
  ASSERT_OK(response);
  ASSERT_EQ(response->spans_size(), 1);
  EXPECT_EQ(response->spans(0).id(), "doc-1");
  EXPECT_EQ(response->spans(0).usage().tokens(), 5);
}

TEST(ServerRunnerTest, BusyPortIsAnError) {
  ASSERT_OK_AND_ASSIGN(auto first, StartFakeServer(LoopbackFlags(), "A"));
  ServerFlags flags = LoopbackFlags();
  flags.listen = first->runner->address();
  absl::StatusOr<std::unique_ptr<FakeServer>> second = StartFakeServer(flags, "B");
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("--listen")));
}

TEST(ServerRunnerTest, HealthGoesNotServingThenServingThenNotServingOnDrain) {
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(LoopbackFlags(), "A", /*serving=*/false));
  ServerRunner& runner = *server->runner;
  ASSERT_OK_AND_ASSIGN(auto conn, Connection::Create(ClientFor(runner)));
  for (const char* name : {"", "icae.v1.Encoder", "icae.v1.Decoder"}) {
    EXPECT_EQ(HealthOf(*conn, name), HealthState::kNotServing) << name;
  }
  EXPECT_THAT(CheckHealth(*conn, "no.such.Service"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  // While loading, calls are refused with UNAVAILABLE.
  EncoderClient client(conn);
  EXPECT_THAT(client.Compress(OneSpan("x")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("loading")));

  runner.SetServing();
  for (const char* name : {"", "icae.v1.Encoder", "icae.v1.Decoder"}) {
    EXPECT_EQ(HealthOf(*conn, name), HealthState::kServing) << name;
  }
  EXPECT_OK(client.Compress(OneSpan("x")));

  // Hold one call in flight so the drain stays open while we look at health.
  std::future<absl::StatusOr<v1::CompressResponse>> held =
      std::async(std::launch::async, [&] { return client.Compress(OneSpan("block")); });
  ASSERT_TRUE(Eventually([&] { return server->encoder->blocked() == 1; }));
  runner.RequestDrain();
  EXPECT_EQ(HealthOf(*conn, ""), HealthState::kNotServing);
  EXPECT_EQ(HealthOf(*conn, "icae.v1.Encoder"), HealthState::kNotServing);
  runner.SetServing();  // too late: a drain is final
  EXPECT_EQ(HealthOf(*conn, ""), HealthState::kNotServing);
  server->encoder->Release();
  EXPECT_OK(held.get());
  EXPECT_OK(runner.Wait());
}

TEST(ServerRunnerTest, DrainFinishesInFlightRefusesNewAndReturns) {
  ServerFlags flags = LoopbackFlags();
  flags.drain_seconds = 30;
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
  ServerRunner& runner = *server->runner;
  ASSERT_OK_AND_ASSIGN(EncoderClient client, Client(ClientFor(runner)));
  std::vector<std::future<absl::StatusOr<v1::CompressResponse>>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(
        std::async(std::launch::async, [&] { return client.Compress(OneSpan("block")); }));
  }
  ASSERT_TRUE(Eventually([&] { return server->encoder->blocked() == 3; }));
  EXPECT_EQ(runner.gate().inflight(), 3);

  runner.RequestDrain();
  std::future<absl::Status> waited = std::async(std::launch::async, [&] { return runner.Wait(); });
  // New work is refused by the gate (the server is still up, so the message is the gate's).
  EXPECT_THAT(client.Compress(OneSpan("late")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("draining")));
  EXPECT_EQ(waited.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  // In-flight calls complete normally; then Wait returns well before drain_seconds.
  const absl::Time released = absl::Now();
  server->encoder->Release();
  for (auto& f : held) {
    absl::StatusOr<v1::CompressResponse> response = f.get();
    ASSERT_OK(response);
    EXPECT_EQ(response->spans(0).id(), "doc-1");
  }
  EXPECT_OK(waited.get());
  EXPECT_LT(absl::Now() - released, absl::Seconds(5));
  EXPECT_EQ(runner.gate().inflight(), 0);
  // The server is gone now.
  EXPECT_THAT(client.Compress(OneSpan("after"), absl::Seconds(2)),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST(ServerRunnerTest, DrainDeadlineCancelsStragglers) {
  ServerFlags flags = LoopbackFlags();
  flags.drain_seconds = 0.3;
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
  ServerRunner& runner = *server->runner;
  ASSERT_OK_AND_ASSIGN(EncoderClient client, Client(ClientFor(runner)));
  auto held = std::async(std::launch::async, [&] { return client.Compress(OneSpan("block")); });
  ASSERT_TRUE(Eventually([&] { return server->encoder->blocked() == 1; }));
  const absl::Time start = absl::Now();
  runner.RequestDrain();
  EXPECT_OK(runner.Wait());
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(5));
  absl::StatusOr<v1::CompressResponse> response = held.get();
  EXPECT_FALSE(response.ok());
}

TEST(ServerRunnerTest, SigtermDrainsAndWaitReturnsOk) {
  ServerFlags flags = LoopbackFlags();
  flags.drain_seconds = 30;
  ASSERT_OK_AND_ASSIGN(auto server,
                       StartFakeServer(flags, "A", /*serving=*/true, /*handle_signals=*/true));
  ServerRunner& runner = *server->runner;
  ASSERT_OK_AND_ASSIGN(auto conn, Connection::Create(ClientFor(runner)));
  EncoderClient client(conn);
  auto held = std::async(std::launch::async, [&] { return client.Compress(OneSpan("block")); });
  ASSERT_TRUE(Eventually([&] { return server->encoder->blocked() == 1; }));

  ASSERT_EQ(::raise(SIGTERM), 0);  // caught: the process keeps running
  ASSERT_TRUE(Eventually([&] { return runner.drain_requested(); }));
  EXPECT_EQ(HealthOf(*conn, ""), HealthState::kNotServing);
  EXPECT_THAT(client.Compress(OneSpan("late")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("draining")));
  server->encoder->Release();
  EXPECT_OK(held.get());
  EXPECT_OK(runner.Wait());
  // The previous disposition is back once the runner stopped watching.
  struct sigaction current;
  ASSERT_EQ(::sigaction(SIGTERM, nullptr, &current), 0);
  EXPECT_EQ(current.sa_handler, SIG_DFL);
}

TEST(ServerRunnerTest, MessageSizeLimitFollowsTheFlag) {
  const std::string five_mib(5 << 20, 'a');
  {
    ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(LoopbackFlags(), "A"));
    ASSERT_OK_AND_ASSIGN(EncoderClient client, Client(ClientFor(*server->runner)));
    absl::StatusOr<v1::CompressResponse> response = client.Compress(OneSpan(five_mib));
    ASSERT_OK(response);
    EXPECT_EQ(response->spans(0).usage().tokens(), 5 << 20);
  }
  ServerFlags flags = LoopbackFlags();
  flags.max_message_bytes = 1 << 20;
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
  ASSERT_OK_AND_ASSIGN(EncoderClient client, Client(ClientFor(*server->runner)));
  EXPECT_THAT(client.Compress(OneSpan(five_mib)),
              StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  EXPECT_OK(client.Compress(OneSpan("small")));
}

// Loopback flags requiring `token`, written to a file under `dir`.
ServerFlags TokenFlags(const ScratchDir& dir, const std::string& token) {
  std::ofstream(dir.Join("token")) << token << "\n";
  ServerFlags flags = LoopbackFlags();
  flags.auth_token_file = dir.Join("token");
  return flags;
}

TEST(ServerRunnerTest, BearerTokenIsRequiredExceptForHealth) {
  ScratchDir dir;
  ServerFlags flags = TokenFlags(dir, "s3cret-token");
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
  ClientOptions options = ClientFor(*server->runner);

  ASSERT_OK_AND_ASSIGN(auto anonymous, Connection::Create(options));
  EXPECT_THAT(EncoderClient(anonymous).Compress(OneSpan("x")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(EncoderClient(anonymous).GetInfo(),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
  // Health stays open for probes.
  EXPECT_EQ(HealthOf(*anonymous, ""), HealthState::kServing);

  options.auth_token = "s3cret-tokeN";
  ASSERT_OK_AND_ASSIGN(EncoderClient wrong, Client(options));
  EXPECT_THAT(wrong.Compress(OneSpan("x")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid")));
  options.auth_token = "s3cret-token-and-more";
  ASSERT_OK_AND_ASSIGN(EncoderClient longer, Client(options));
  EXPECT_THAT(longer.Compress(OneSpan("x")),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));

  options.auth_token = "";
  options.auth_token_file = dir.Join("token");
  ASSERT_OK_AND_ASSIGN(EncoderClient right, Client(options));
  EXPECT_OK(right.Compress(OneSpan("x")));
  EXPECT_OK(right.GetInfo());
  EXPECT_EQ(server->encoder->calls(), 2);  // refused calls never reached the work

  // Other schemes are refused.
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Basic s3cret-token");
  v1::EncoderInfo info;
  auto stub = v1::Encoder::NewStub(anonymous->channel());
  EXPECT_EQ(stub->GetInfo(&context, v1::GetEncoderInfoRequest(), &info).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(ServerRunnerTest, TlsAndMutualTls) {
  ScratchDir dir;
  ASSERT_OK_AND_ASSIGN(TestCerts certs, MakeTestCerts(dir.path()));
  ServerFlags flags = LoopbackFlags();
  flags.tls_cert = certs.server_cert;
  flags.tls_key = certs.server_key;
  {
    ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
    ClientOptions options = ClientFor(*server->runner);
    options.timeout = absl::Seconds(3);
    // A plaintext client cannot talk to a TLS server.
    ASSERT_OK_AND_ASSIGN(EncoderClient plain, Client(options));
    EXPECT_FALSE(plain.GetInfo().ok());
    options.tls_ca_file = certs.ca_cert;
    options.tls_server_name = "localhost";
    ASSERT_OK_AND_ASSIGN(EncoderClient tls, Client(options));
    EXPECT_OK(tls.GetInfo());
  }
  flags.tls_client_ca = certs.ca_cert;
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
  ClientOptions options = ClientFor(*server->runner);
  options.timeout = absl::Seconds(3);
  options.tls_ca_file = certs.ca_cert;
  options.tls_server_name = "localhost";
  ASSERT_OK_AND_ASSIGN(EncoderClient no_cert, Client(options));
  EXPECT_THAT(no_cert.GetInfo(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  options.tls_cert_file = certs.rogue_cert;
  options.tls_key_file = certs.rogue_key;
  ASSERT_OK_AND_ASSIGN(EncoderClient rogue, Client(options));
  EXPECT_THAT(rogue.GetInfo(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  options.tls_cert_file = certs.client_cert;
  options.tls_key_file = certs.client_key;
  ASSERT_OK_AND_ASSIGN(EncoderClient mtls, Client(options));
  absl::StatusOr<v1::EncoderInfo> info = mtls.GetInfo();
  ASSERT_OK(info);
  EXPECT_EQ(info->version(), "A");
}

// D8: a key that is not the certificate's is named at start-up, not reported as a port problem.
TEST(ServerRunnerTest, TlsKeyOfAnotherCertificateIsNamed) {
  ScratchDir dir;
  ASSERT_OK_AND_ASSIGN(TestCerts certs, MakeTestCerts(dir.path()));
  ServerFlags flags = LoopbackFlags();
  flags.tls_cert = certs.server_cert;
  flags.tls_key = certs.client_key;
  EXPECT_THAT(StartFakeServer(flags, "A").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(::testing::HasSubstr("--tls_key"),
                                        ::testing::HasSubstr("not the private key"))));
  std::ofstream(dir.Join("garbage.pem")) << "-----BEGIN PRIVATE KEY-----\nnot base64\n";
  flags.tls_key = dir.Join("garbage.pem");
  EXPECT_THAT(StartFakeServer(flags, "A").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("no readable")));
}

// grpc.reflection.v1alpha ServerReflectionInfo with list_services, encoded by hand (the generated
// reflection headers are not installed). Returns the answer's bytes, or the RPC's error.
absl::StatusOr<std::string> ListServices(const FakeServer& server) {
  ASSIGN_OR_RETURN(auto conn, Connection::Create(ClientFor(*server.runner)));
  grpc::ClientContext context;
  conn->PrepareContext(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          conn->channel().get(), method, &context));
  const std::string request("\x3a\x01*", 3);  // field 7 (list_services) = "*"
  grpc::Slice slice(request);
  stream->Write(grpc::ByteBuffer(&slice, 1));
  stream->WritesDone();
  std::string bytes;
  grpc::ByteBuffer reply;
  while (stream->Read(&reply)) {
    std::vector<grpc::Slice> slices;
    if (!reply.Dump(&slices).ok()) break;
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return bytes;
}

// The answer names our services.
TEST(ServerRunnerTest, ReflectionListsTheServices) {
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(LoopbackFlags(), "A"));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ListServices(*server));
  EXPECT_THAT(bytes, HasSubstr("icae.v1.Encoder"));
  EXPECT_THAT(bytes, HasSubstr("icae.v1.Decoder"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
}

// D5: reflection cannot check a bearer token, so a token closes it unless --reflection on opens
// it (to anyone, as health); --reflection off closes it without a token too.
TEST(ServerRunnerTest, ATokenClosesReflectionUnlessAFlagOpensIt) {
  ScratchDir dir;
  ServerFlags flags = TokenFlags(dir, "t");
  {
    ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
    EXPECT_THAT(ListServices(*server), StatusIs(absl::StatusCode::kUnimplemented, ::testing::_));
  }
  flags.reflection = "on";
  {
    ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
    ASSERT_OK_AND_ASSIGN(std::string bytes, ListServices(*server));
    EXPECT_THAT(bytes, HasSubstr("icae.v1.Encoder"));
  }
  flags = LoopbackFlags();
  flags.reflection = "off";
  {
    ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A"));
    EXPECT_THAT(ListServices(*server), StatusIs(absl::StatusCode::kUnimplemented, ::testing::_));
  }
  flags.reflection = "sometimes";
  EXPECT_THAT(StartFakeServer(flags, "A").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--reflection")));
}

TEST(ServerRunnerTest, MetricsEndpointServesTheCommonFamilies) {
  ServerFlags flags = LoopbackFlags();
  flags.metrics_listen = "127.0.0.1:0";
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(flags, "A", /*serving=*/false));
  ServerRunner& runner = *server->runner;
  ASSERT_OK_AND_ASSIGN(EncoderClient client, Client(ClientFor(runner)));
  EXPECT_FALSE(client.Compress(OneSpan("x")).ok());  // UNAVAILABLE while loading
  runner.SetServing();
  runner.metrics().SetInfo(
      {"tiny-llama", "adapter.safetensors", "abc123", "0.1.0", "cpu", "float32"});
  EXPECT_OK(client.Compress(OneSpan("x")));
  EXPECT_OK(client.Compress(OneSpan("y")));
  EXPECT_FALSE(client.Compress(v1::CompressRequest()).ok());
  EXPECT_OK(client.GetInfo());

  ASSERT_OK_AND_ASSIGN(std::string http, HttpGet(runner.metrics_port(), "/metrics"));
  EXPECT_THAT(http, HasSubstr("200 OK"));
  const std::string requests = "icae_encoder_requests_total";
  EXPECT_EQ(MetricValue(http, requests, {{"method", "Compress"}, {"code", "OK"}}), 2);
  EXPECT_EQ(MetricValue(http, requests, {{"method", "Compress"}, {"code", "INVALID_ARGUMENT"}}), 1);
  EXPECT_EQ(MetricValue(http, requests, {{"method", "Compress"}, {"code", "UNAVAILABLE"}}), 1);
  EXPECT_EQ(MetricValue(http, requests, {{"method", "GetInfo"}, {"code", "OK"}}), 1);
  EXPECT_EQ(
      MetricValue(http, "icae_encoder_request_duration_seconds_count", {{"method", "Compress"}}),
      4);
  EXPECT_EQ(MetricValue(http, "icae_encoder_inflight_requests"), 0);
  EXPECT_EQ(MetricValue(http, "icae_encoder_info",
                        {{"base_model", "tiny-llama"},
                         {"adapter", "adapter.safetensors"},
                         {"encoder_id", "abc123"},
                         {"version", "0.1.0"},
                         {"device", "cpu"},
                         {"dtype", "float32"}}),
            1);
  EXPECT_THAT(http, HasSubstr("# TYPE icae_encoder_request_duration_seconds histogram"));
  // Methods of every registered service have duration series from the start.
  EXPECT_EQ(MetricValue(http, "icae_encoder_request_duration_seconds_count",
                        {{"method", "GenerateStream"}}),
            0);

  // In-flight gauge counts a held call.
  auto held = std::async(std::launch::async, [&] { return client.Compress(OneSpan("block")); });
  ASSERT_TRUE(Eventually([&] { return server->encoder->blocked() == 1; }));
  ASSERT_OK_AND_ASSIGN(http, HttpGet(runner.metrics_port(), "/metrics"));
  EXPECT_EQ(MetricValue(http, "icae_encoder_inflight_requests"), 1);
  server->encoder->Release();
  EXPECT_OK(held.get());
}

TEST(ServerRunnerTest, CreateRejectsBadTransportFlags) {
  ServerFlags flags = LoopbackFlags();
  flags.max_message_bytes = 0;
  EXPECT_THAT(ServerRunner::Create(flags, {.metrics_service = "encoder"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_message_bytes")));
  flags = LoopbackFlags();
  EXPECT_THAT(ServerRunner::Create(
                  flags, {.metrics_service = "encoder", .grpc_services = {"icae.v1.Nope"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("icae.v1.Nope")));
}

}  // namespace
}  // namespace icae::testing
