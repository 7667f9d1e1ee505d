// icae-encoder operations over gRPC: overload and deadlines, health while loading, SIGTERM drain,
// bearer token and mutual TLS, and the `icae compress --encoder` client.
#include <grpcpp/client_context.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/io/mapped_file.h"
#include "common/io/slots_file.h"
#include "tests/encoder_service/encoder_server_fixture.h"

namespace icae::testing {
namespace {

using ::testing::HasSubstr;

class EncoderOpsTest : public EncoderServerTest {
 public:
  // Polls the metric until `predicate(value)` holds or `timeout` passes; returns the last value.
  template <typename Pred>
  double Poll(const std::string& name, const std::map<std::string, std::string>& labels,
              Pred predicate, absl::Duration timeout = absl::Seconds(20)) const {
    const absl::Time deadline = absl::Now() + timeout;
    double value = Metric(name, labels);
    while (!predicate(value) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      value = Metric(name, labels);
    }
    return value;
  }

  // A call on the raw stub, so the test controls the context (deadline, cancellation).
  grpc::Status RawCompress(const v1::CompressRequest& request, grpc::ClientContext* context) {
    auto conn = Connection::Create(options_);
    EXPECT_TRUE(conn.ok());
    auto stub = v1::Encoder::NewStub((*conn)->channel());
    v1::CompressResponse response;
    return stub->Compress(context, request, &response);
  }
};

TEST_F(EncoderOpsTest, FullQueueIsRefusedAtOnceAndExpiredWorkIsDropped) {
  // One segment per batch: a big request keeps the queue loaded for tens of seconds (the tiny
  // model compresses a few thousand segments a second; everything below must happen meanwhile).
  StartServer({"--max_batch_segments", "1", "--max_queue_segments", "65000", "--max_input_tokens",
               "1000000"});
  v1::CompressRequest big = IdsRequest({RandomIds(16 * 60000, 384, 1)});  // 60000 segments
  big.set_bypass_cache(true);
  grpc::ClientContext big_context;
  grpc::Status big_status;
  std::thread big_call([&] { big_status = RawCompress(big, &big_context); });
  const double queued = Poll("icae_encoder_queue_segments", {}, [](double v) { return v > 55000; });
  ASSERT_GT(queued, 55000);

  // ~60000 queued + 10000 more would exceed 65000: RESOURCE_EXHAUSTED, not queued.
  EncoderClient client = Client();
  v1::CompressRequest more = IdsRequest({RandomIds(16 * 10000, 384, 2)});
  EXPECT_THAT(client.Compress(more),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_queue_segments")));

  // A 1 ms deadline behind the loaded queue: the client sees DEADLINE_EXCEEDED and the server
  // drops the queued work without computing it. On a busy host a 1 ms call can expire before
  // the server even dispatches it (then there is nothing to drop), so longer deadlines follow
  // until one reaches the queue; every one of them must still end DEADLINE_EXCEEDED.
  double dropped = 0;
  for (int ms : {1, 1, 1, 5, 20, 100, 500}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
    grpc::Status status = RawCompress(IdsRequest({RandomIds(40, 384, 10 + ms)}), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << ms << " ms: " << status.error_message();
    dropped = Poll(
        "icae_encoder_dropped_segments_total", {{"reason", "deadline"}},
        [](double v) { return v >= 3; }, absl::Seconds(2));
    if (dropped >= 3) break;
  }
  EXPECT_GE(dropped, 3);  // a 3-segment request reached the queue and was dropped
  EXPECT_GE(Metric("icae_encoder_requests_total",
                   {{"method", "Compress"}, {"code", "DEADLINE_EXCEEDED"}}),
            1);

  // Cancelling the big call drops what is still queued.
  const double queued_before_cancel = Metric("icae_encoder_queue_segments");
  big_context.TryCancel();
  big_call.join();
  EXPECT_EQ(big_status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_GT(queued_before_cancel, 0);
  EXPECT_GT(Poll("icae_encoder_dropped_segments_total", {{"reason", "cancelled"}},
                 [](double v) { return v > 0; }),
            0);
  EXPECT_EQ(Poll("icae_encoder_queue_segments", {}, [](double v) { return v == 0; }), 0);
  EXPECT_EQ(Poll("icae_encoder_inflight_requests", {}, [](double v) { return v == 0; }), 0);
  // Still serving.
  EXPECT_OK(client.Compress(IdsRequest({{1, 2, 3}})));
}

TEST_F(EncoderOpsTest, HealthIsNotServingWhileLoadingThenServing) {
  // config.json is a named pipe: the server blocks reading it (loading) until the test feeds it.
  auto copy = MakeModelCopy(dir_.path(), /*tokenizer=*/false, /*config_fifo=*/true);
  ASSERT_OK(copy);
  StartOn(*copy, {}, /*wait_serving=*/false);
  auto conn = Connection::Create(options_);
  ASSERT_OK(conn);
  EXPECT_EQ(HealthOf(**conn, ""), HealthState::kNotServing);
  EXPECT_EQ(HealthOf(**conn, "icae.v1.Encoder"), HealthState::kNotServing);
  EncoderClient client(*conn);
  EXPECT_THAT(client.Compress(IdsRequest({{1, 2}})),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("loading")));
  EXPECT_THAT(client.GetInfo(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("loading")));
  EXPECT_EQ(HealthOf(**conn, ""), HealthState::kNotServing);  // still loading

  auto config = ReadFileToString(std::string(ICAE_TESTDATA) + "/tiny-llama/config.json");
  ASSERT_OK(config);
  FifoFeeder feeder(copy->model_dir + "/config.json", *config);
  ASSERT_OK(WaitForServing(**conn, "icae.v1.Encoder", absl::Seconds(60)));
  EXPECT_EQ(HealthOf(**conn, ""), HealthState::kServing);
  EXPECT_TRUE(feeder.served());
  EXPECT_OK(client.GetInfo());
  EXPECT_OK(client.Compress(IdsRequest({{1, 2}})));
}

// Joins the threads when the test returns early on a failed assertion.
struct JoinAll {
  std::vector<std::thread>& threads;
  ~JoinAll() {
    for (std::thread& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

TEST_F(EncoderOpsTest, SigtermCompletesTwentyInflightRequestsAndExitsZero) {
  // One segment per batch keeps the 20 calls (5120 segments) running for a while.
  StartServer(
      {"--max_batch_segments", "1", "--max_queue_segments", "10000", "--drain_seconds", "120"});
  constexpr int kCalls = 20;
  std::vector<std::thread> threads;
  JoinAll join_all{threads};
  std::vector<absl::StatusOr<v1::CompressResponse>> results(kCalls, absl::UnknownError("not run"));
  std::atomic<int> finished{0};
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      v1::CompressRequest request;
      request.set_bypass_cache(true);
      for (int s = 0; s < 4; ++s) {  // 4 spans x 1024 tokens = 256 segments
        const std::vector<int> ids = RandomIds(1024, 384, 100 * i + s);
        request.add_spans()->mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
      }
      results[i] = Client().Compress(request);
      ++finished;
    });
  }
  const double inflight =
      Poll("icae_encoder_inflight_requests", {}, [](double v) { return v >= kCalls; });
  ASSERT_EQ(inflight, kCalls);
  ASSERT_EQ(finished.load(), 0) << "the calls must still be running at SIGTERM";
  server_->Signal(SIGTERM);

  // Draining: health NOT_SERVING and new calls refused, while the 20 go on.
  auto conn = Connection::Create(options_);
  ASSERT_OK(conn);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (HealthOf(**conn, "") != HealthState::kNotServing && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(HealthOf(**conn, ""), HealthState::kNotServing);
  EXPECT_THAT(EncoderClient(*conn).Compress(IdsRequest({{1, 2}})),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("draining")));

  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_OK(results[i]) << "call " << i;
    EXPECT_EQ(results[i]->spans_size(), 4);
    EXPECT_EQ(results[i]->usage().segments(), 4 * 64);
  }
  auto code = server_->WaitExit(absl::Seconds(60));
  ASSERT_OK(code);
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(server_->Log(), HasSubstr("draining"));
}

TEST_F(EncoderOpsTest, DrainDeadlineCancelsWhatIsLeftAndStillExitsZero) {
  StartServer({"--max_batch_segments", "1", "--max_queue_segments", "30000", "--max_input_tokens",
               "400000", "--drain_seconds", "0.5"});
  v1::CompressRequest big = IdsRequest({RandomIds(16 * 20000, 384, 3)});
  big.set_bypass_cache(true);
  absl::StatusOr<v1::CompressResponse> result = absl::UnknownError("not run");
  std::thread call([&] { result = Client().Compress(big); });
  std::vector<std::thread> threads;
  JoinAll join_all{threads};
  threads.push_back(std::move(call));
  ASSERT_GT(Poll("icae_encoder_queue_segments", {}, [](double v) { return v > 15000; }), 15000);
  server_->Signal(SIGTERM);
  // The 0.5 s drain cannot finish 20000 segments: the call is cut off, the process still exits 0.
  auto code = server_->WaitExit(absl::Seconds(60));
  ASSERT_OK(code);
  EXPECT_EQ(*code, 0);
  threads[0].join();
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(server_->Log(), HasSubstr("drain ended with 1 calls in flight"));
}

TEST_F(EncoderOpsTest, BearerTokenAndMutualTls) {
  auto certs = MakeTestCerts(dir_.path());
  ASSERT_OK(certs);
  ASSERT_OK(WriteStringToFile(dir_.Join("token"), "s3cret-token\n"));
  auto copy = MakeModelCopy(dir_.path(), /*tokenizer=*/false);
  ASSERT_OK(copy);
  copy_ = *copy;
  ClientOptions secure;
  secure.tls_ca_file = certs->ca_cert;
  secure.tls_cert_file = certs->client_cert;
  secure.tls_key_file = certs->client_key;
  secure.tls_server_name = "localhost";
  secure.auth_token = "s3cret-token";
  secure.max_attempts = 1;
  secure.timeout = absl::Seconds(30);
  StartOn(copy_,
          {"--tls_cert", certs->server_cert, "--tls_key", certs->server_key, "--tls_client_ca",
           certs->ca_cert, "--auth_token_file", dir_.Join("token")},
          /*wait_serving=*/false);
  secure.addresses = {server_->address()};
  {
    auto conn = Connection::Create(secure);
    ASSERT_OK(conn);
    ASSERT_OK(WaitForServing(**conn, "", absl::Seconds(60)));
  }
  EXPECT_OK(Client(secure).GetInfo());
  auto slots = Client(secure).Compress(IdsRequest({{1, 2, 3}}));
  ASSERT_OK(slots);
  EXPECT_EQ(slots->spans(0).slots().slots().shape(0), 4);

  ClientOptions no_token = secure;
  no_token.auth_token.clear();
  EXPECT_THAT(Client(no_token).Compress(IdsRequest({{1}})),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("")));
  EXPECT_THAT(Client(no_token).GetInfo(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("")));
  {
    auto conn = Connection::Create(no_token);  // health needs no token
    ASSERT_OK(conn);
    EXPECT_EQ(HealthOf(**conn, ""), HealthState::kServing);
  }
  ClientOptions wrong_token = secure;
  wrong_token.auth_token = "guess";
  EXPECT_THAT(Client(wrong_token).Compress(IdsRequest({{1}})),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("")));
  ClientOptions no_cert = secure;
  no_cert.tls_cert_file.clear();
  no_cert.tls_key_file.clear();
  EXPECT_FALSE(Client(no_cert).GetInfo().ok());
  ClientOptions rogue = secure;
  rogue.tls_cert_file = certs->rogue_cert;
  rogue.tls_key_file = certs->rogue_key;
  EXPECT_FALSE(Client(rogue).GetInfo().ok());
  ClientOptions plaintext = secure;
  plaintext.tls = false;
  plaintext.tls_ca_file.clear();
  plaintext.tls_cert_file.clear();
  plaintext.tls_key_file.clear();
  plaintext.tls_server_name.clear();
  EXPECT_FALSE(Client(plaintext).GetInfo().ok());
  EXPECT_GE(
      Metric("icae_encoder_requests_total", {{"method", "Compress"}, {"code", "UNAUTHENTICATED"}}),
      2);
}

TEST_F(EncoderOpsTest, IcaeCompressWithEncoderWritesTheOfflineFile) {
  StartServer({}, /*tokenizer=*/true);
  const std::string icae = BinDir() + "/icae";
  const std::vector<int> ids = RandomIds(40, 384, 5);
  const std::string id_list = absl::StrJoin(ids, ",");
  auto run = [&](const std::string& args, const std::string& log) {
    const std::string command =
        absl::StrCat(icae, " compress ", args, " > ", dir_.Join(log), " 2>&1");
    const int rc = std::system(command.c_str());
    EXPECT_EQ(rc, 0) << command << "\n" << ReadFileToString(dir_.Join(log)).value_or("");
  };
  const std::string offline_model =
      absl::StrCat("--model ", copy_.model_dir, " --adapter ", copy_.adapter, " --threads 1");
  run(absl::StrCat("--encoder ", server_->address(), " --token-ids ", id_list, " --out ",
                   dir_.Join("remote.st")),
      "remote.log");
  run(absl::StrCat(offline_model, " --token-ids ", id_list, " --out ", dir_.Join("offline.st")),
      "offline.log");
  run(absl::StrCat("--encoder ", server_->address(),
                   " --text 'memory slots for the decoder' --slot-dtype bfloat16 --out ",
                   dir_.Join("remote_text.st")),
      "remote_text.log");
  run(absl::StrCat(offline_model, " --text 'memory slots for the decoder' --out ",
                   dir_.Join("offline_text.st")),
      "offline_text.log");

  auto remote = ReadSlotsFile(dir_.Join("remote.st"));
  auto offline = ReadSlotsFile(dir_.Join("offline.st"));
  ASSERT_OK(remote);
  ASSERT_OK(offline);
  EXPECT_EQ(remote->encoder_id, offline->encoder_id);  // same files, same id, other process
  EXPECT_EQ(remote->encoder_id, Client().GetInfo()->encoder_id());
  EXPECT_EQ(remote->source_tokens, 40);
  EXPECT_EQ(remote->num_segments, 3);
  EXPECT_EQ(remote->mem_size, 4);
  EXPECT_EQ(remote->shape, (std::vector<int64_t>{12, 64}));
  EXPECT_LE(MaxAbsDiff(FloatsFromF32(remote->data), FloatsFromF32(offline->data)), 1e-5);

  auto remote_text = ReadSlotsFile(dir_.Join("remote_text.st"));
  auto offline_text = ReadSlotsFile(dir_.Join("offline_text.st"));
  ASSERT_OK(remote_text);
  ASSERT_OK(offline_text);
  EXPECT_EQ(remote_text->dtype, DType::kBFloat16);  // kept as it came over the wire
  EXPECT_EQ(remote_text->source_tokens, offline_text->source_tokens);
  const std::vector<float> wire = FloatsFromBF16(remote_text->data);
  const std::vector<float> exact = FloatsFromF32(offline_text->data);
  ASSERT_EQ(wire.size(), exact.size());
  for (size_t i = 0; i < wire.size(); ++i) {
    ASSERT_LE(std::fabs(wire[i] - exact[i]), std::fabs(exact[i]) / 256 + 1e-6) << i;
  }

  // A server that is not there: a clean failure, exit code 1.
  const std::string command =
      absl::StrCat(icae, " compress --encoder 127.0.0.1:1 --token-ids 1,2 --timeout 1 --out ",
                   dir_.Join("none.st"), " > ", dir_.Join("none.log"), " 2>&1");
  EXPECT_EQ(WEXITSTATUS(std::system(command.c_str())), 1);
}

}  // namespace
}  // namespace icae::testing
