// The client library against real servers on 127.0.0.1: target building, round-robin over two
// replicas, retry onto the other replica while one drains or is gone, deadlines, the typed
// decoder wrappers (unary and streaming).
#include <future>
#include <set>

#include "common/client/decoder_client.h"
#include "common/client/encoder_client.h"
#include "common/client/encoder_router.h"
#include "common/client/health_client.h"
#include "tests/common/serving/serving_test_util.h"
#include "tests/util/test_util.h"

namespace icae::testing {
namespace {

using ::testing::HasSubstr;

TEST(BuildTargetTest, OneAddressIsUsedAsIsSeveralBecomeAnIpList) {
  EXPECT_EQ(*BuildTarget({"encoder:50051"}), "encoder:50051");
  EXPECT_EQ(*BuildTarget({"dns:///encoder.ns.svc:50051"}), "dns:///encoder.ns.svc:50051");
  EXPECT_EQ(*BuildTarget({"10.0.0.1:1", "localhost:2"}), "ipv4:10.0.0.1:1,127.0.0.1:2");
  EXPECT_EQ(*BuildTarget({"[::1]:1", "[fe80::2]:2"}), "ipv6:[::1]:1,[fe80::2]:2");
  EXPECT_THAT(BuildTarget({}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(BuildTarget({"10.0.0.1:1", "[::1]:2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mix")));
  EXPECT_THAT(BuildTarget({"10.0.0.1:1", "encoder:2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dns:///")));
  EXPECT_THAT(BuildTarget({"10.0.0.1:1", "dns:///x:2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

// The content key and ranking are a protocol between clients: the Python client asserts the same
// values (tests/clients/python_slot_store_test.py).
TEST(EncoderRouterTest, ContentKeysAndRankingAreTheSpecifiedOnes) {
  v1::Span ids;
  ids.mutable_token_ids()->add_ids(1);
  ids.mutable_token_ids()->add_ids(2);
  ids.mutable_token_ids()->add_ids(3);
  EXPECT_EQ(SpanContentKey(ids), "79ae57b5a2cc8051b389dbfcd049dcd5384fc4001e39201278902818b22a8b4a");
  v1::Span text;
  text.set_text("h\xc3\xa9llo");
  EXPECT_EQ(SpanContentKey(text), "38c5a283ffb18030641554c44cbbc74be291bbd0caaf34fe320021ad67f05e8c");
  EXPECT_THAT(RendezvousRanking(SpanContentKey(ids), {"a:1", "b:2", "c:3"}),
              ::testing::ElementsAre(1, 2, 0));
  ASSERT_OK(ParseRoutingPolicy("hash"));
  EXPECT_EQ(*ParseRoutingPolicy("hash"), RoutingPolicy::kContentHash);
  EXPECT_THAT(ParseRoutingPolicy("random").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hash or round_robin")));
}

TEST(BuildServiceConfigTest, RoundRobinAndRetryOfUnavailable) {
  const std::string config = BuildServiceConfig(3);
  EXPECT_THAT(config, HasSubstr(R"("round_robin")"));
  EXPECT_THAT(config, HasSubstr(R"("maxAttempts":3)"));
  EXPECT_THAT(config, HasSubstr(R"("retryableStatusCodes":["UNAVAILABLE"])"));
  EXPECT_THAT(config, HasSubstr(R"("service":"icae.v1.Decoder")"));
  EXPECT_THAT(BuildServiceConfig(9), HasSubstr(R"("maxAttempts":5)"));
  EXPECT_THAT(BuildServiceConfig(1), ::testing::Not(HasSubstr("retryPolicy")));
}

TEST(ConnectionTest, RejectsBadOptions) {
  ClientOptions options;
  options.addresses = {"127.0.0.1:1"};
  options.max_message_bytes = 0;
  EXPECT_THAT(Connection::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  options.max_message_bytes = 1024;
  options.tls_cert_file = "/nonexistent.pem";
  EXPECT_THAT(Connection::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  options.tls_key_file = "/nonexistent.key";
  EXPECT_THAT(Connection::Create(options), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

// Which replica answered each of `n` GetInfo calls ("A" or "B"); errors fail the test.
std::map<std::string, int> Spread(const EncoderClient& client, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<v1::EncoderInfo> info = client.GetInfo();
    EXPECT_OK(info) << "call " << i;
    if (info.ok()) ++seen[info->version()];
  }
  return seen;
}

TEST(ClientTest, RoundRobinSpreadsCallsAndRetriesAroundADrainingOrDeadReplica) {
  ASSERT_OK_AND_ASSIGN(auto a, StartFakeServer(LoopbackFlags(), "A"));
  ASSERT_OK_AND_ASSIGN(auto b, StartFakeServer(LoopbackFlags(), "B"));
  ClientOptions options;
  options.addresses = {a->runner->address(), b->runner->address()};
  options.timeout = absl::Seconds(10);
  options.max_attempts = 3;
  ASSERT_OK_AND_ASSIGN(EncoderClient client, EncoderClient::Create(options));
  EXPECT_THAT(client.connection().target(), HasSubstr("ipv4:127.0.0.1:"));
  ASSERT_OK(WaitForServing(client.connection(), "icae.v1.Encoder", absl::Seconds(10)));
  // Round robin only spreads over connected replicas: until the second connection is up (slow
  // under a sanitizer) every call goes to the first. Call until both have answered.
  std::map<std::string, int> seen;
  for (int i = 0; i < 200 && (seen["A"] == 0 || seen["B"] == 0); ++i) {
    std::map<std::string, int> one = Spread(client, 1);
    for (const auto& [name, n] : one) seen[name] += n;
  }
  ASSERT_TRUE(seen["A"] > 0 && seen["B"] > 0) << "one replica never answered";

  seen = Spread(client, 20);
  EXPECT_GE(seen["A"], 5);
  EXPECT_GE(seen["B"], 5);

  // A drains: it still accepts connections but refuses work with UNAVAILABLE; the retry policy
  // sends each refused call on to B.
  std::future<absl::Status> a_waited;
  a->runner->RequestDrain();
  seen = Spread(client, 20);
  EXPECT_EQ(seen["B"], 20);
  EXPECT_EQ(seen["A"], 0);

  // A is gone altogether: calls keep succeeding on B.
  EXPECT_OK(a->runner->Wait());
  seen = Spread(client, 20);
  EXPECT_EQ(seen["B"], 20);
}

TEST(ClientTest, WithoutRetryARefusalSurfaces) {
  ASSERT_OK_AND_ASSIGN(auto a, StartFakeServer(LoopbackFlags(), "A", /*serving=*/false));
  ASSERT_OK_AND_ASSIGN(EncoderClient client, EncoderClient::Create(ClientFor(*a->runner)));
  EXPECT_THAT(client.GetInfo(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("loading")));
}

TEST(ClientTest, DefaultAndPerCallDeadlines) {
  ASSERT_OK_AND_ASSIGN(auto a, StartFakeServer(LoopbackFlags(), "A"));
  ClientOptions options = ClientFor(*a->runner);
  options.timeout = absl::Milliseconds(300);
  ASSERT_OK_AND_ASSIGN(EncoderClient client, EncoderClient::Create(options));
  v1::CompressRequest request;
  request.add_spans()->set_text("block");
  EXPECT_THAT(client.Compress(request),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  EXPECT_THAT(client.Compress(request, absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
}

TEST(DecoderClientTest, GenerateAndGenerateStream) {
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(LoopbackFlags(), "A"));
  ASSERT_OK_AND_ASSIGN(DecoderClient client, DecoderClient::Create(ClientFor(*server->runner)));
  v1::GenerateRequest request;
  request.set_max_new_tokens(4);
  request.set_request_id("r1");
  absl::StatusOr<v1::GenerateResponse> response = client.Generate(request);
  ASSERT_OK(response);
  EXPECT_EQ(response->text(), "t0t1t2t3");
  EXPECT_EQ(response->request_id(), "r1");

  std::string text;
  std::vector<v1::FinishReason> reasons;
  ASSERT_OK(client.GenerateStream(request, [&](const v1::GenerateChunk& chunk) {
    text += chunk.text();
    reasons.push_back(chunk.finish_reason());
    return true;
  }));
  EXPECT_EQ(text, "t0t1t2t3");
  ASSERT_EQ(reasons.size(), 4u);
  EXPECT_EQ(reasons.back(), v1::LENGTH);
  EXPECT_EQ(reasons.front(), v1::FINISH_REASON_UNSPECIFIED);

  // Stopping from the callback cancels the call.
  request.set_max_new_tokens(1000);
  int chunks = 0;
  EXPECT_THAT(
      client.GenerateStream(request, [&](const v1::GenerateChunk&) { return ++chunks < 3; }),
      StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_EQ(chunks, 3);
  absl::StatusOr<v1::DecoderInfo> info = client.GetInfo();
  ASSERT_OK(info);
  EXPECT_EQ(info->version(), "fake-decoder");
}

TEST(DecoderClientTest, StreamRefusedWhileLoadingReportsUnavailable) {
  ASSERT_OK_AND_ASSIGN(auto server, StartFakeServer(LoopbackFlags(), "A", /*serving=*/false));
  ASSERT_OK_AND_ASSIGN(DecoderClient client, DecoderClient::Create(ClientFor(*server->runner)));
  int chunks = 0;
  EXPECT_THAT(client.GenerateStream(v1::GenerateRequest(),
                                    [&](const v1::GenerateChunk&) { return ++chunks > 0; }),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("loading")));
  EXPECT_EQ(chunks, 0);
}

}  // namespace
}  // namespace icae::testing
