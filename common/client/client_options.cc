#include "common/client/client_options.h"

#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <climits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/serving/file_util.h"

namespace icae {
namespace {

enum class Family { kV4, kV6 };

// "HOST:PORT" with a literal IP host ("localhost" counts as 127.0.0.1) -> family and the address
// as the ipv4:/ipv6: resolvers want it.
absl::StatusOr<std::pair<Family, std::string>> LiteralAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "' is not HOST:PORT"));
  }
  std::string host(address.substr(0, colon));
  absl::string_view port = address.substr(colon + 1);
  if (host == "localhost") host = "127.0.0.1";
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    return std::make_pair(Family::kV4, absl::StrCat(host, ":", port));
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
      inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) == 1) {
    return std::make_pair(Family::kV6, absl::StrCat(host, ":", port));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "address '", address,
      "': several addresses must be IP literals; for a DNS name use one dns:///NAME:PORT target"));
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const ClientOptions& options) {
  const bool tls = options.tls || !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
                   !options.tls_key_file.empty();
  if (!tls) return grpc::InsecureChannelCredentials();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert_file and tls_key_file must be given together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadSmallFile(options.tls_ca_file));
  }
  if (!options.tls_cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadSmallFile(options.tls_cert_file));
    ASSIGN_OR_RETURN(ssl.pem_private_key, ReadSmallFile(options.tls_key_file));
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::string> BuildTarget(const std::vector<std::string>& addresses) {
  if (addresses.empty()) return absl::InvalidArgumentError("no server address given");
  if (addresses.size() == 1) {
    if (addresses[0].empty()) return absl::InvalidArgumentError("empty server address");
    return addresses[0];  // "HOST:PORT" (DNS) or a target URI, used as is
  }
  std::vector<std::string> parts;
  Family family = Family::kV4;
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (absl::StrContains(addresses[i], "://") || absl::StartsWith(addresses[i], "ipv")) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", addresses[i], "': a target URI must be the only address"));
    }
    ASSIGN_OR_RETURN(auto literal, LiteralAddress(addresses[i]));
    if (i > 0 && literal.first != family) {
      return absl::InvalidArgumentError("cannot mix IPv4 and IPv6 addresses in one channel");
    }
    family = literal.first;
    parts.push_back(std::move(literal.second));
  }
  return absl::StrCat(family == Family::kV4 ? "ipv4:" : "ipv6:", absl::StrJoin(parts, ","));
}

std::string BuildServiceConfig(int max_attempts) {
  std::string config = R"({"loadBalancingConfig":[{"round_robin":{}}])";
  if (max_attempts > 1) {
    absl::StrAppend(
        &config,
        R"(,"methodConfig":[{"name":[{"service":"icae.v1.Encoder"},{"service":"icae.v1.Decoder"}],)",
        R"("retryPolicy":{"maxAttempts":)", std::min(max_attempts, 5),
        R"(,"initialBackoff":"0.05s","maxBackoff":"1s","backoffMultiplier":2,)",
        R"("retryableStatusCodes":["UNAVAILABLE"]}}])");
  }
  absl::StrAppend(&config, "}");
  return config;
}

absl::StatusOr<std::shared_ptr<const Connection>> Connection::Create(const ClientOptions& options) {
  if (options.max_message_bytes <= 0 || options.max_message_bytes > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes ", options.max_message_bytes, " is not in 1..", INT_MAX));
  }
  if (options.max_attempts < 1) return absl::InvalidArgumentError("max_attempts must be >= 1");
  std::shared_ptr<Connection> conn(new Connection());
  ASSIGN_OR_RETURN(conn->target_, BuildTarget(options.addresses));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials, MakeCredentials(options));
  std::string token = options.auth_token;
  if (token.empty() && !options.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(token, ReadTokenFile(options.auth_token_file));
  }
  if (!token.empty()) conn->authorization_ = absl::StrCat("Bearer ", token);
  conn->timeout_ = options.timeout;

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  // Our config wins over one published in DNS TXT records.
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  args.SetServiceConfigJSON(BuildServiceConfig(options.max_attempts));
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  conn->channel_ = grpc::CreateCustomChannel(conn->target_, credentials, args);
  return std::shared_ptr<const Connection>(std::move(conn));
}

void Connection::PrepareContext(grpc::ClientContext* context, absl::Duration timeout) const {
  if (timeout == absl::ZeroDuration()) timeout = timeout_;
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  if (!authorization_.empty()) context->AddMetadata("authorization", authorization_);
}

}  // namespace icae
