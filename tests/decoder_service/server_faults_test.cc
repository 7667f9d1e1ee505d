// Faults in a fleet of two real icae-decoder replicas behind one client (round robin, retry of
// UNAVAILABLE): one replica is SIGKILLed while streams and unary calls run on both.
//
// What a client sees, and what this test pins down:
//  - a stream that was running on the killed replica ends UNAVAILABLE after the chunks it had
//    received; gRPC does not retry it (a call is retried only before its first response), so
//    re-issuing it is the caller's choice;
//  - unary calls in flight on the killed replica have received nothing yet, so the retry policy
//    sends them on to the survivor and they succeed;
//  - every call made after the kill succeeds on the survivor.
#include <grpcpp/client_context.h>

#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

TEST_F(DecoderServerTest, KillingOneOfTwoReplicasMidStream) {
  const std::vector<std::string> flags = {"--max_running", "4", "--max_waiting", "16",
                                          "--max_new_tokens", "2000"};
  std::unique_ptr<Server> a = StartDecoder(SlowModel().model_dir, SlowModel().adapter, flags,
                                           scratch_->Join("replica-a.log"));
  std::unique_ptr<Server> b = StartDecoder(SlowModel().model_dir, SlowModel().adapter, flags,
                                           scratch_->Join("replica-b.log"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ClientOptions options;
  options.addresses = {a->process.address(), b->process.address()};
  options.max_attempts = 3;
  options.timeout = absl::Minutes(2);
  ASSERT_OK_AND_ASSIGN(DecoderClient client, DecoderClient::Create(options));
  ASSERT_OK(WaitForServing(client.connection(), "icae.v1.Decoder", absl::Seconds(30)));
  // Round robin only spreads over connected replicas: call until both have served one, so that
  // the streams below alternate between them.
  auto served = [&](Server& s) {  // OK Generate calls so far (the series appears with the first).
    return std::max(0.0, s.Metric("icae_decoder_requests_total",
                                  {{"method", "Generate"}, {"code", "OK"}}));
  };
  for (int i = 0; i < 100 && (served(*a) == 0 || served(*b) == 0); ++i) {
    ASSERT_OK(client.Generate(SlowRequest(1)).status());
  }
  ASSERT_TRUE(served(*a) > 0 && served(*b) > 0) << "one replica never answered";

  // Four long streams: round robin puts two on each replica.
  constexpr int kStreams = 4, kStreamTokens = 1500;
  std::vector<StreamResult> streams(kStreams);
  std::atomic<int> streaming{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      bool first = true;
      streams[i].status = client.GenerateStream(SlowRequest(kStreamTokens),
                                                [&](const v1::GenerateChunk& chunk) {
                                                  streams[i].chunks.push_back(chunk);
                                                  if (first) ++streaming, first = false;
                                                  return true;
                                                });
    });
  }
  for (int i = 0; i < 3000 && streaming.load() < kStreams; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(streaming.load(), kStreams) << "the streams did not start";
  ASSERT_GE(a->Metric("icae_decoder_num_requests_running"), 1)
      << "no stream on the replica about to be killed";
  ASSERT_GE(b->Metric("icae_decoder_num_requests_running"), 1) << "no stream on the survivor";
  // Two workers making short unary calls until told to stop.
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::vector<absl::Status> unary;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        absl::Status s = client.Generate(SlowRequest(16)).status();
        absl::MutexLock lock(&mu);
        unary.push_back(s);
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));  // Unary calls in flight on both replicas.

  a->process.Signal(SIGKILL);
  ASSERT_OK_AND_ASSIGN(int exit_code, a->process.Wait(absl::Seconds(10)));
  EXPECT_EQ(exit_code, 128 + SIGKILL);
  absl::SleepFor(absl::Seconds(1));  // Calls keep coming while the client notices.
  stop = true;
  for (std::thread& t : threads) t.join();

  int cut = 0, whole = 0;
  for (const StreamResult& s : streams) {
    if (s.status.ok()) {
      ++whole;
      EXPECT_EQ(s.ids().size(), static_cast<size_t>(kStreamTokens));
    } else {
      ++cut;
      EXPECT_EQ(s.status.code(), absl::StatusCode::kUnavailable) << s.status;
      EXPECT_FALSE(s.chunks.empty());  // It had started: what arrived stays delivered.
      EXPECT_LT(s.ids().size(), static_cast<size_t>(kStreamTokens));
    }
  }
  std::cout << "streams: " << whole << " finished on the survivor, " << cut
            << " cut by the kill (UNAVAILABLE); unary calls: " << unary.size() << "\n";
  EXPECT_GE(cut, 1);
  EXPECT_GE(whole, 1);
  ASSERT_GE(unary.size(), 2u);
  for (const absl::Status& s : unary) EXPECT_OK(s) << "a unary call was lost";

  // After the kill every call is served by the survivor.
  const double b_before = served(*b);
  for (int i = 0; i < 6; ++i) EXPECT_OK(client.Generate(SlowRequest(4)).status());
  EXPECT_EQ(served(*b), b_before + 6);
}

}  // namespace
}  // namespace icae::decoder
