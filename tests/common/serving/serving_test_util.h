// Helpers for the serving and client tests: a fake encoder server on 127.0.0.1 (port 0), an HTTP
// GET over a plain socket, Prometheus text lookup, and certificates made by the openssl CLI.
#ifndef ICAE_TESTS_COMMON_SERVING_SERVING_TEST_UTIL_H_
#define ICAE_TESTS_COMMON_SERVING_SERVING_TEST_UTIL_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/client/client_options.h"
#include "common/client/health_client.h"
#include "common/serving/server_flags.h"
#include "common/serving/server_runner.h"
#include "tests/common/serving/fake_services.h"

namespace icae::testing {

// The health state, or kUnknown when the check itself failed.
HealthState HealthOf(const Connection& connection, absl::string_view service);

// Loopback, port 0, no metrics HTTP, short drain.
ServerFlags LoopbackFlags();

// A started ServerRunner around a FakeEncoder (and optionally a FakeDecoder). Stops the runner
// before the services go.
struct FakeServer {
  std::unique_ptr<ServerRunner> runner;
  std::unique_ptr<FakeEncoder> encoder;
  std::unique_ptr<FakeDecoder> decoder;
  ~FakeServer();
};

// Create + Start; SetServing too when `serving`. handle_signals is off unless asked.
absl::StatusOr<std::unique_ptr<FakeServer>> StartFakeServer(const ServerFlags& flags,
                                                            const std::string& name,
                                                            bool serving = true,
                                                            bool handle_signals = false);

// Client options for one server at runner->address() (127.0.0.1:PORT), no retry.
ClientOptions ClientFor(const ServerRunner& runner);

// "GET <path> HTTP/1.0" to 127.0.0.1:port; the whole response (headers and body).
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// Value of the sample `name{labels}` in Prometheus text, or -1 when absent. Labels must match
// exactly (all of them).
double MetricValue(const std::string& text, const std::string& name,
                   const std::map<std::string, std::string>& labels = {});

// A CA plus a server certificate (CN=localhost, SAN localhost and 127.0.0.1) and a client
// certificate signed by it, written by the openssl CLI under `dir`.
struct TestCerts {
  std::string ca_cert, server_cert, server_key, client_cert, client_key;
  // A client certificate signed by a different CA (must be refused under mTLS).
  std::string rogue_cert, rogue_key;
};
absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir);

}  // namespace icae::testing

#ifndef ASSERT_OK_AND_ASSIGN
#define ICAE_TEST_CONCAT_INNER_(a, b) a##b
#define ICAE_TEST_CONCAT_(a, b) ICAE_TEST_CONCAT_INNER_(a, b)
// ASSERT_OK_AND_ASSIGN(lhs, rexpr): asserts the StatusOr is OK and moves its value into lhs.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ICAE_ASSERT_OK_AND_ASSIGN_IMPL_(ICAE_TEST_CONCAT_(icae_statusor_, __LINE__), lhs, rexpr)
#define ICAE_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  ASSERT_TRUE(statusor.ok()) << statusor.status();            \
  lhs = std::move(statusor).value()
#endif

#endif  // ICAE_TESTS_COMMON_SERVING_SERVING_TEST_UTIL_H_
