// The Redis client against a real redis-server on loopback: URL parsing, pipelined GET/GETEX/SET,
// expiry, AUTH and SELECT, and behaviour while Redis is down (fast Unavailable, then recovery).
#include "common/store/redis_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "tests/util/redis_server.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::RedisServer;
using ::icae::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

TEST(RedisUrlTest, Parses) {
  absl::StatusOr<RedisOptions> o = ParseRedisUrl("redis://10.1.2.3:6380/4");
  ASSERT_OK(o);
  EXPECT_EQ(o->host, "10.1.2.3");
  EXPECT_EQ(o->port, 6380);
  EXPECT_EQ(o->db, 4);
  EXPECT_EQ(o->password, "");
  o = ParseRedisUrl("redis://redis.icae.svc");
  ASSERT_OK(o);
  EXPECT_EQ(o->host, "redis.icae.svc");
  EXPECT_EQ(o->port, 6379);
  EXPECT_EQ(o->db, 0);
  o = ParseRedisUrl("redis://:s3cret@host:1/");
  ASSERT_OK(o);
  EXPECT_EQ(o->password, "s3cret");
  EXPECT_EQ(o->username, "");
  EXPECT_EQ(o->Describe(), "host:1/0");  // never the password
  o = ParseRedisUrl("redis://icae:pw@[::1]:7000/1");
  ASSERT_OK(o);
  EXPECT_EQ(o->username, "icae");
  EXPECT_EQ(o->host, "::1");
  EXPECT_EQ(o->port, 7000);

  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(ParseRedisUrl("rediss://host"), StatusIs(kInvalid, HasSubstr("TLS")));
  EXPECT_THAT(ParseRedisUrl("http://host"), StatusIs(kInvalid, HasSubstr("redis://")));
  EXPECT_THAT(ParseRedisUrl("redis://host:0"), StatusIs(kInvalid, HasSubstr("port '0'")));
  EXPECT_THAT(ParseRedisUrl("redis://host:x"), StatusIs(kInvalid, HasSubstr("port 'x'")));
  EXPECT_THAT(ParseRedisUrl("redis://host/-1"), StatusIs(kInvalid, HasSubstr("database")));
  EXPECT_THAT(ParseRedisUrl("redis://:6379"), StatusIs(kInvalid, HasSubstr("no host")));
  EXPECT_THAT(ParseRedisUrl("redis://[::1"), StatusIs(kInvalid, HasSubstr("unterminated")));
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
    ASSERT_OK(server);
    server_ = *std::move(server);
    options_.port = server_->port();
  }
  std::unique_ptr<RedisServer> server_;
  RedisOptions options_;
};

TEST_F(RedisClientTest, SetThenGetInOneRoundTripWithBinaryValues) {
  RedisClient redis(options_);
  const std::string binary("a\0b\xff\r\n", 6);
  ASSERT_OK(redis.Set({{"k1", binary}, {"k2", std::string(1 << 20, 'x')}}, absl::Minutes(1)));
  absl::StatusOr<std::vector<std::optional<std::string>>> got =
      redis.Get({"k1", "missing", "k2"}, absl::ZeroDuration());
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 3u);
  EXPECT_THAT((*got)[0], Optional(binary));
  EXPECT_EQ((*got)[1], std::nullopt);
  EXPECT_EQ((*got)[2]->size(), 1u << 20);
  ASSERT_OK(redis.Delete({"k1"}));
  got = redis.Get({"k1"}, absl::Minutes(1));
  ASSERT_OK(got);
  EXPECT_THAT(*got, ElementsAre(std::nullopt));
  got = redis.Get({}, absl::ZeroDuration());
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
}

TEST_F(RedisClientTest, KeysExpireAndGetexRenewsThem) {
  RedisClient redis(options_);
  ASSERT_OK(redis.Set({{"short", "v"}, {"renewed", "v"}}, absl::Milliseconds(400)));
  // Renew one key's expiry twice while the other runs out.
  for (int i = 0; i < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    ASSERT_OK(redis.Get({"renewed"}, absl::Milliseconds(400)));
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> got =
      redis.Get({"short", "renewed"}, absl::ZeroDuration());
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0], std::nullopt);
  EXPECT_THAT((*got)[1], Optional(std::string("v")));
}

TEST_F(RedisClientTest, DownIsUnavailableFastAndRecovers) {
  options_.retry_backoff = absl::Milliseconds(300);
  RedisClient redis(options_);
  ASSERT_OK(redis.Set({{"k", "v"}}, absl::ZeroDuration()));
  server_->Kill();
  EXPECT_THAT(redis.Get({"k"}, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("redis")));
  // The breaker is open: no connect attempt, an immediate error naming the cause.
  const absl::Time start = absl::Now();
  EXPECT_THAT(redis.Get({"k"}, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("next try in")));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
  ASSERT_OK(server_->Restart());
  absl::SleepFor(absl::Milliseconds(350));
  absl::StatusOr<std::vector<std::optional<std::string>>> got =
      redis.Get({"k"}, absl::ZeroDuration());
  ASSERT_OK(got);
  EXPECT_THAT(*got, ElementsAre(std::nullopt));  // nothing persisted
}

TEST(RedisClientAuthTest, PasswordAndDatabase) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server =
      RedisServer::Start({"--requirepass", "s3cret"});
  ASSERT_OK(server);
  RedisOptions wrong = *ParseRedisUrl(absl::StrCat("redis://:nope@127.0.0.1:", (*server)->port()));
  EXPECT_THAT(RedisClient(wrong).Ping(), StatusIs(absl::StatusCode::kInternal, HasSubstr("AUTH")));
  RedisOptions none = *ParseRedisUrl(absl::StrCat("redis://127.0.0.1:", (*server)->port()));
  EXPECT_THAT(RedisClient(none).Set({{"k", "v"}}, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("NOAUTH")));

  RedisClient db3(*ParseRedisUrl(absl::StrCat("redis://:s3cret@127.0.0.1:", (*server)->port(), "/3")));
  RedisClient db0(*ParseRedisUrl(absl::StrCat("redis://:s3cret@127.0.0.1:", (*server)->port())));
  ASSERT_OK(db3.Set({{"k", "three"}}, absl::ZeroDuration()));
  absl::StatusOr<std::vector<std::optional<std::string>>> got = db0.Get({"k"}, absl::ZeroDuration());
  ASSERT_OK(got);
  EXPECT_THAT(*got, ElementsAre(std::nullopt));
  got = db3.Get({"k"}, absl::ZeroDuration());
  ASSERT_OK(got);
  EXPECT_THAT(*got, ElementsAre(Optional(std::string("three"))));
}

}  // namespace
}  // namespace icae
