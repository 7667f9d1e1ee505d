#include "tests/common/serving/serving_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

namespace icae::testing {

HealthState HealthOf(const Connection& connection, absl::string_view service) {
  absl::StatusOr<HealthState> state = CheckHealth(connection, service);
  return state.ok() ? *state : HealthState::kUnknown;
}

ServerFlags LoopbackFlags() {
  ServerFlags flags;
  flags.listen = "127.0.0.1:0";
  flags.metrics_listen = "";
  flags.drain_seconds = 5;
  return flags;
}

FakeServer::~FakeServer() {
  if (encoder != nullptr) encoder->Release();
  if (runner != nullptr) runner->Stop();
  encoder.reset();
  decoder.reset();
  runner.reset();
}

absl::StatusOr<std::unique_ptr<FakeServer>> StartFakeServer(const ServerFlags& flags,
                                                            const std::string& name, bool serving,
                                                            bool handle_signals) {
  auto server = std::make_unique<FakeServer>();
  ServerRunnerOptions options;
  options.metrics_service = "encoder";
  options.grpc_services = {"icae.v1.Encoder", "icae.v1.Decoder"};
  options.effective_flags = "test";
  options.handle_signals = handle_signals;
  ASSIGN_OR_RETURN(server->runner, ServerRunner::Create(flags, std::move(options)));
  server->encoder = std::make_unique<FakeEncoder>(&server->runner->gate(), name);
  server->decoder = std::make_unique<FakeDecoder>(&server->runner->gate());
  RETURN_IF_ERROR(server->runner->Start({server->encoder.get(), server->decoder.get()}));
  if (serving) server->runner->SetServing();
  return server;
}

ClientOptions ClientFor(const ServerRunner& runner) {
  ClientOptions options;
  options.addresses = {runner.address()};
  options.max_attempts = 1;
  options.timeout = absl::Seconds(20);
  return options;
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port, " failed"));
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return absl::InternalError("send failed");
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

double MetricValue(const std::string& text, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  std::string wanted = name;
  if (!labels.empty()) {
    std::vector<std::string> parts;
    for (const auto& [key, value] : labels) parts.push_back(absl::StrCat(key, "=\"", value, "\""));
    wanted = absl::StrCat(name, "{", absl::StrJoin(parts, ","), "}");
  }
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    absl::string_view series = line.substr(0, space);
    // prometheus-cpp prints labels sorted by name, as std::map iterates; compare as printed.
    if (series != wanted) continue;
    double value;
    if (absl::SimpleAtod(line.substr(space + 1), &value)) return value;
  }
  return -1;
}

namespace {

absl::Status Run(const std::string& command) {
  const std::string quiet = absl::StrCat(command, " > /dev/null 2>&1");
  if (std::system(quiet.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("command failed: ", command));
  }
  return absl::OkStatus();
}

// Key + CSR + certificate signed by ca (both paths without extension) with a SAN extension file.
absl::Status IssueCert(const std::string& dir, const std::string& name, const std::string& subject,
                       const std::string& ca, const std::string& extensions) {
  const std::string base = absl::StrCat(dir, "/", name);
  RETURN_IF_ERROR(Run(absl::StrCat("printf '", extensions, "\\n' > ", base, ".ext")));
  RETURN_IF_ERROR(Run(absl::StrCat(
      "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ", base,
      ".key -out ", base, ".csr -subj ", subject)));
  return Run(absl::StrCat("openssl x509 -req -in ", base, ".csr -CA ", ca, ".crt -CAkey ", ca,
                          ".key -CAcreateserial -days 2 -out ", base, ".crt -extfile ", base,
                          ".ext"));
}

absl::Status MakeCa(const std::string& dir, const std::string& name) {
  const std::string base = absl::StrCat(dir, "/", name);
  return Run(absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ", base,
      ".key -out ", base, ".crt -days 2 -subj /CN=", name));
}

}  // namespace

absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir) {
  RETURN_IF_ERROR(MakeCa(dir, "ca"));
  RETURN_IF_ERROR(MakeCa(dir, "rogue-ca"));
  const std::string ca = absl::StrCat(dir, "/ca");
  RETURN_IF_ERROR(
      IssueCert(dir, "server", "/CN=localhost", ca, "subjectAltName=DNS:localhost,IP:127.0.0.1"));
  RETURN_IF_ERROR(IssueCert(dir, "client", "/CN=test-client", ca, "extendedKeyUsage=clientAuth"));
  RETURN_IF_ERROR(IssueCert(dir, "rogue", "/CN=rogue-client", absl::StrCat(dir, "/rogue-ca"),
                            "extendedKeyUsage=clientAuth"));
  TestCerts certs;
  certs.ca_cert = ca + ".crt";
  certs.server_cert = dir + "/server.crt";
  certs.server_key = dir + "/server.key";
  certs.client_cert = dir + "/client.crt";
  certs.client_key = dir + "/client.key";
  certs.rogue_cert = dir + "/rogue.crt";
  certs.rogue_key = dir + "/rogue.key";
  return certs;
}

}  // namespace icae::testing
