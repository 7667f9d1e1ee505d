// Request lifecycle in the real icae-decoder: an unread stream does not stall the scheduler, a
// cancelled stream leaves the running batch (gauges), a full queue, a deadline, and SIGTERM while
// streams run (over TLS with a bearer token), the stream cap and the idle timeout.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

TEST_F(DecoderServerTest, ASlowReaderDoesNotStallTheScheduler) {
  const std::map<std::string, std::string> length = {{"finish_reason", "length"}};
  const double finished_before = Tiny()->Metric("icae_decoder_requests_finished_total", length);
  grpc::ClientContext context;
  Tiny()->connection->PrepareContext(&context);
  v1::GenerateRequest request = AeRequest("slots", 480);
  request.set_ignore_eos(true);
  auto reader = Tiny()->stub->GenerateStream(&context, request);
  v1::GenerateChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  int ids = chunk.token_ids_size();
  // The client reads nothing more, yet its generation completes and others are served.
  absl::StatusOr<v1::GenerateResponse> other = Tiny()->client->Generate(AeRequest("slots", 12));
  ASSERT_OK(other);
  EXPECT_EQ(Ids(other->token_ids()), ToIds(IcaeFixture("ae_greedy_ids")));
  bool done = false;
  for (int i = 0; i < 500 && !done; ++i) {
    done = Tiny()->Metric("icae_decoder_requests_finished_total", length) >= finished_before + 2;
    if (!done) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(done) << "the unread stream's generation did not finish";
  int chunks = 1;
  while (reader->Read(&chunk)) {
    ids += chunk.token_ids_size();
    ++chunks;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(ids, 480);
  EXPECT_EQ(chunk.finish_reason(), v1::LENGTH);
  std::cout << "480 tokens arrived in " << chunks << " chunks\n";
}

TEST_F(DecoderServerTest, CancelledStreamLeavesTheRunningBatch) {
  const double cancelled_before =
      Slow()->Metric("icae_decoder_requests_finished_total", {{"finish_reason", "cancelled"}});
  grpc::ClientContext context;
  Slow()->connection->PrepareContext(&context);
  auto reader = Slow()->stub->GenerateStream(&context, SlowRequest(1500));
  v1::GenerateChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk)) << FromGrpcStatus(reader->Finish());
  EXPECT_EQ(Slow()->Metric("icae_decoder_num_requests_running"), 1);
  // What it needs now (8 context positions and room to grow, by blocks), not its 1500 tokens.
  const double used = Slow()->Metric("icae_decoder_kv_cache_tokens_used");
  EXPECT_GE(used, 9);
  EXPECT_LT(used, 8 + 1500);
  // Whole blocks of the pool (16 positions), shown as blocks too.
  EXPECT_EQ(static_cast<int64_t>(used) % 16, 0);
  EXPECT_EQ(Slow()->Metric("icae_decoder_kv_blocks", {{"state", "used"}}), used / 16);
  EXPECT_EQ(Slow()->Metric("icae_decoder_kv_blocks", {{"state", "free"}}) * 16 + used,
            Slow()->Metric("icae_decoder_kv_cache_tokens_capacity"));
  context.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_running", 0));
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_kv_cache_tokens_used", 0));
  EXPECT_EQ(
      Slow()->Metric("icae_decoder_requests_finished_total", {{"finish_reason", "cancelled"}}),
      cancelled_before + 1);
  // It stopped early: far fewer than 1500 tokens were generated in all.
  EXPECT_LT(Slow()->Metric("icae_decoder_generation_tokens_total"), 1000);
}

TEST_F(DecoderServerTest, FullQueueAndDeadline) {
  // --max_running 2 --max_waiting 1: two run, one waits, the fourth is refused.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateChunk>>> readers;
  for (int i = 0; i < 3; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    Slow()->connection->PrepareContext(contexts.back().get());
    readers.push_back(Slow()->stub->GenerateStream(contexts.back().get(), SlowRequest(1500)));
    if (i < 2) {
      v1::GenerateChunk chunk;
      ASSERT_TRUE(readers.back()->Read(&chunk));
    }
  }
  ASSERT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_waiting", 1));
  EXPECT_EQ(Slow()->Metric("icae_decoder_num_requests_running"), 2);
  EXPECT_THAT(Slow()->client->Generate(SlowRequest(10)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_waiting 1")));
  for (auto& context : contexts) context->TryCancel();
  for (auto& reader : readers) {
    v1::GenerateChunk chunk;
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_running", 0));
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_waiting", 0));

  // A deadline that passes mid-generation stops it.
  EXPECT_EQ(Slow()->client->Generate(SlowRequest(1500), absl::Milliseconds(400)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_running", 0));
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_kv_cache_tokens_used", 0));
}

// --max_streams caps open streams before any work is queued, and --stream_idle_seconds cancels a
// stream whose client stopped taking chunks (its flow-control window is full), so unread streams
// without a deadline cannot pile up; a reading client is unaffected.
TEST_F(DecoderServerTest, StreamCapAndIdleTimeout) {
  std::unique_ptr<Server> server =
      StartDecoder(TinyModelDir(), testing::TinyAdapter(),
                   {"--max_streams", "2", "--stream_idle_seconds", "1", "--max_running", "4"},
                   scratch_->Join("streams.log"));
  ASSERT_NE(server, nullptr);
  v1::GenerateRequest request = AeRequest("slots", 480);
  request.set_ignore_eos(true);
  // A client that reads one chunk and then nothing: a small receive window and no BDP probing,
  // so the server's writes stall once a few hundred bytes are unread.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 256);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto channel = grpc::CreateCustomChannel(server->process.address(),
                                           grpc::InsecureChannelCredentials(), args);
  auto stalled_stub = v1::Decoder::NewStub(channel);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateChunk>>> readers;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stalled_stub->GenerateStream(contexts.back().get(), request));
    v1::GenerateChunk chunk;
    ASSERT_TRUE(readers.back()->Read(&chunk)) << FromGrpcStatus(readers.back()->Finish());
  }
  EXPECT_EQ(server->Metric("icae_decoder_streams_open"), 2);
  // The third is refused at once, and no request reached the engine for it.
  StreamResult third = Stream(*server->client, request);
  EXPECT_THAT(third.status,
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_streams")));
  EXPECT_TRUE(third.chunks.empty());
  EXPECT_GE(server->Metric("icae_decoder_requests_total",
                           {{"method", "GenerateStream"}, {"code", "RESOURCE_EXHAUSTED"}}),
            1);
  // Both unread streams are cancelled within the idle timeout (plus the watchdog's tick).
  EXPECT_TRUE(server->AwaitMetric("icae_decoder_streams_idle_cancelled_total", 2))
      << server->process.Log();
  EXPECT_TRUE(server->AwaitMetric("icae_decoder_streams_open", 0));
  for (auto& reader : readers) {
    v1::GenerateChunk chunk;
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(server->AwaitMetric("icae_decoder_num_requests_running", 0));
  // A client that reads is served in full, however long the stream (more than the timeout).
  StreamResult reading = Stream(*server->client, request);
  ASSERT_OK(reading.status);
  EXPECT_EQ(reading.ids().size(), 480u);
  EXPECT_EQ(server->Metric("icae_decoder_streams_idle_cancelled_total"), 2);
}

TEST_F(DecoderServerTest, SigtermLetsRunningStreamsFinish) {
  // Served over TLS with a bearer token, as a deployment would be.
  std::filesystem::create_directories(scratch_->Join("certs"));
  absl::StatusOr<testing::TestCerts> certs = testing::MakeTestCerts(scratch_->Join("certs"));
  ASSERT_OK(certs);
  const std::string token_file = scratch_->Join("token");
  std::ofstream(token_file) << "s3cret-token\n";
  ClientOptions tls;
  tls.tls_ca_file = certs->ca_cert;
  tls.tls_server_name = "localhost";
  tls.auth_token = "s3cret-token";
  std::unique_ptr<Server> server =
      StartDecoder(SlowModel().model_dir, SlowModel().adapter,
                   {"--drain_seconds", "60", "--tls_cert", certs->server_cert, "--tls_key",
                    certs->server_key, "--auth_token_file", token_file},
                   scratch_->Join("sigterm.log"), tls);
  ASSERT_NE(server, nullptr);
  {
    ClientOptions no_token = tls;
    no_token.auth_token.clear();
    no_token.addresses = {server->process.address()};
    auto connection = Connection::Create(no_token);
    ASSERT_OK(connection);
    EXPECT_EQ(DecoderClient(*connection).Generate(SlowRequest(4)).status().code(),
              absl::StatusCode::kUnauthenticated);
  }
  constexpr int kStreams = 3;
  constexpr int kTokens = 200;
  std::atomic<int> started{0};
  std::vector<StreamResult> results(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      bool first = true;
      results[i].status = server->client->GenerateStream(
          SlowRequest(kTokens),
          [&](const v1::GenerateChunk& chunk) {
            results[i].chunks.push_back(chunk);
            if (first) ++started, first = false;
            return true;
          },
          // Generous: on a loaded 2-core machine the slow model's 200 steps x 3 can pass 60 s.
          absl::Minutes(5));
    });
  }
  while (started.load() < kStreams) absl::SleepFor(absl::Milliseconds(5));
  server->process.Signal(SIGTERM);
  // Draining: health goes NOT_SERVING and new calls are refused, while the streams go on.
  bool not_serving = false;
  for (int i = 0; i < 200 && !not_serving; ++i) {
    not_serving =
        CheckHealth(*server->connection, "icae.v1.Decoder").value_or(HealthState::kUnknown) ==
        HealthState::kNotServing;
    if (!not_serving) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(not_serving);
  EXPECT_EQ(server->client->Generate(SlowRequest(4)).status().code(),
            absl::StatusCode::kUnavailable);
  for (std::thread& t : threads) t.join();
  for (const StreamResult& r : results) {
    EXPECT_OK(r.status);
    EXPECT_EQ(r.ids().size(), static_cast<size_t>(kTokens));
    ASSERT_FALSE(r.chunks.empty());
    EXPECT_EQ(r.chunks.back().finish_reason(), v1::LENGTH);
  }
  absl::StatusOr<int> exit_code = server->process.Wait(absl::Seconds(30));
  ASSERT_OK(exit_code);
  EXPECT_EQ(*exit_code, 0) << server->process.Log();
}

}  // namespace
}  // namespace icae::decoder
