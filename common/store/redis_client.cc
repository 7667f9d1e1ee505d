#include "common/store/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace icae {
namespace {

timeval TimevalOf(absl::Duration d) {
  const int64_t us = std::max<int64_t>(absl::ToInt64Microseconds(d), 1000);
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

absl::Status ReplyError(const redisReply& reply, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("redis ", what, ": ", absl::string_view(reply.str, reply.len)));
}

// Runs one command on a fresh connection during set-up (AUTH, SELECT).
absl::Status Command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  Reply reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (reply == nullptr) {
    return absl::UnavailableError(absl::StrCat("redis ", args[0], ": ", c->errstr));
  }
  if (reply->type == REDIS_REPLY_ERROR) return ReplyError(*reply, args[0]);
  return absl::OkStatus();
}

}  // namespace

std::string RedisOptions::Describe() const { return absl::StrCat(host, ":", port, "/", db); }

absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url) {
  RedisOptions options;
  absl::string_view rest = url;
  if (absl::StartsWith(rest, "rediss://")) {
    return absl::InvalidArgumentError(
        "rediss:// (TLS) is not supported: this build's hiredis (Debian 12: 0.14) has no TLS; "
        "reach a TLS Redis through a local TLS proxy (e.g. stunnel) and use redis://");
  }
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot store URL '", url, "' must look like redis://[:PASSWORD@]HOST[:PORT][/DB]"));
  }
  const size_t at = rest.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == absl::string_view::npos) {
      options.password = std::string(userinfo);  // redis://PASSWORD@host, as redis-cli reads it
    } else {
      options.username = std::string(userinfo.substr(0, colon));
      options.password = std::string(userinfo.substr(colon + 1));
    }
  }
  const size_t slash = rest.find('/');
  absl::string_view hostport = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    absl::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!absl::SimpleAtoi(db, &options.db) || options.db < 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("slot store URL: database '", db, "' is not a number >= 0"));
    }
  }
  absl::string_view host = hostport, port;
  if (absl::StartsWith(hostport, "[")) {  // [IPv6]:PORT
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("slot store URL: unterminated [IPv6 address]");
    }
    host = hostport.substr(1, close - 1);
    absl::string_view after = hostport.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("slot store URL: expected :PORT after the IPv6 address");
    }
    port = after;
  } else if (const size_t colon = hostport.rfind(':'); colon != absl::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (!port.empty() &&
      (!absl::SimpleAtoi(port, &options.port) || options.port <= 0 || options.port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot store URL: port '", port, "' is not in 1..65535"));
  }
  if (host.empty()) return absl::InvalidArgumentError("slot store URL: no host");
  options.host = std::string(host);
  return options;
}

void RedisClient::ContextDeleter::operator()(redisContext* context) const { redisFree(context); }

RedisClient::RedisClient(RedisOptions options) : options_(std::move(options)) {}
RedisClient::~RedisClient() = default;

absl::Status RedisClient::Failed(absl::Status status) {
  absl::MutexLock lock(&mu_);
  retry_at_ = absl::Now() + options_.retry_backoff;
  last_error_ = std::string(status.message());
  idle_.clear();  // their server may be gone too
  return status;
}

absl::StatusOr<RedisClient::Connection> RedisClient::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Connection c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    const absl::Time now = absl::Now();
    if (now < retry_at_) {
      return absl::UnavailableError(
          absl::StrCat("redis ", options_.Describe(), " unavailable (", last_error_,
                       "); next try in ", absl::FormatDuration(retry_at_ - now)));
    }
  }
  Connection c(redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                       TimevalOf(options_.connect_timeout)));
  if (c == nullptr || c->err != 0) {
    return Failed(absl::UnavailableError(
        absl::StrCat("cannot connect to redis ", options_.Describe(), ": ",
                     c == nullptr ? "out of memory" : c->errstr)));
  }
  if (redisSetTimeout(c.get(), TimevalOf(options_.io_timeout)) != REDIS_OK) {
    return Failed(absl::UnavailableError(absl::StrCat("redis ", options_.Describe(),
                                                      ": cannot set the I/O timeout")));
  }
  absl::Status setup = absl::OkStatus();
  if (!options_.password.empty()) {
    setup = options_.username.empty() ? Command(c.get(), {"AUTH", options_.password})
                                      : Command(c.get(), {"AUTH", options_.username,
                                                          options_.password});
  }
  if (setup.ok() && options_.db != 0) setup = Command(c.get(), {"SELECT", absl::StrCat(options_.db)});
  if (!setup.ok()) {
    return Failed(absl::Status(setup.code(),
                               absl::StrCat(options_.Describe(), ": ", setup.message())));
  }
  return c;
}

void RedisClient::Release(Connection connection) {
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(idle_.size()) < options_.max_idle_connections) {
    idle_.push_back(std::move(connection));
  }
}

template <typename OnReply>
absl::Status RedisClient::Pipeline(const std::vector<std::vector<absl::string_view>>& commands,
                                   OnReply on_reply) {
  if (commands.empty()) return absl::OkStatus();
  absl::StatusOr<Connection> connection = Acquire();
  if (!connection.ok()) return connection.status();
  redisContext* c = connection->get();
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& command : commands) {
    argv.clear();
    lens.clear();
    for (absl::string_view a : command) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      return Failed(absl::UnavailableError(absl::StrCat("redis ", options_.Describe(), ": ",
                                                        c->errstr)));
    }
  }
  absl::Status first_error = absl::OkStatus();
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      return Failed(absl::UnavailableError(
          absl::StrCat("redis ", options_.Describe(), ": ", c->err != 0 ? c->errstr : "no reply")));
    }
    Reply reply(static_cast<redisReply*>(raw));
    absl::Status s = on_reply(i, *reply);
    if (!s.ok() && first_error.ok()) first_error = s;  // keep reading: the pipeline must drain
  }
  Release(*std::move(connection));
  return first_error;
}

absl::StatusOr<std::vector<std::optional<std::string>>> RedisClient::Get(
    absl::Span<const std::string> keys, absl::Duration refresh_ttl) {
  const std::string px = absl::StrCat(absl::ToInt64Milliseconds(refresh_ttl));
  const bool refresh = refresh_ttl >= absl::Milliseconds(1);
  std::vector<std::vector<absl::string_view>> commands;
  commands.reserve(keys.size());
  for (const std::string& key : keys) {
    if (refresh) {
      commands.push_back({"GETEX", key, "PX", px});
    } else {
      commands.push_back({"GET", key});
    }
  }
  std::vector<std::optional<std::string>> values(keys.size());
  absl::Status status = Pipeline(commands, [&](size_t i, const redisReply& reply) {
    switch (reply.type) {
      case REDIS_REPLY_STRING:
        values[i].emplace(reply.str, reply.len);
        return absl::OkStatus();
      case REDIS_REPLY_NIL:
        return absl::OkStatus();
      case REDIS_REPLY_ERROR:
        return ReplyError(reply, refresh ? "GETEX" : "GET");
      default:
        return absl::InternalError(absl::StrCat("redis GET: unexpected reply type ", reply.type));
    }
  });
  if (!status.ok()) return status;
  return values;
}

absl::Status RedisClient::Set(absl::Span<const std::pair<std::string, std::string>> entries,
                              absl::Duration ttl) {
  const std::string px = absl::StrCat(absl::ToInt64Milliseconds(ttl));
  const bool expire = ttl >= absl::Milliseconds(1);
  std::vector<std::vector<absl::string_view>> commands;
  commands.reserve(entries.size());
  for (const auto& [key, value] : entries) {
    if (expire) {
      commands.push_back({"SET", key, value, "PX", px});
    } else {
      commands.push_back({"SET", key, value});
    }
  }
  return Pipeline(commands, [](size_t, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) return ReplyError(reply, "SET");
    return absl::OkStatus();
  });
}

absl::Status RedisClient::Delete(absl::Span<const std::string> keys) {
  std::vector<std::vector<absl::string_view>> commands;
  for (const std::string& key : keys) commands.push_back({"DEL", key});
  return Pipeline(commands, [](size_t, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) return ReplyError(reply, "DEL");
    return absl::OkStatus();
  });
}

absl::Status RedisClient::Ping() {
  return Pipeline({{"PING"}}, [](size_t, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) return ReplyError(reply, "PING");
    return absl::OkStatus();
  });
}

}  // namespace icae
