#include "common/serving/server_flags.h"

#include <fstream>

#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::testing::HasSubstr;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
}

class ServerFlagsTest : public ::testing::Test {
 protected:
  ServerFlagsTest() : flagset_("test") {
    RegisterServerFlags(flagset_, "0.0.0.0:50051", "0.0.0.0:9091", &flags_);
    WriteFile(dir_.Join("cert.pem"), "-----BEGIN CERTIFICATE-----\n");
    WriteFile(dir_.Join("key.pem"), "-----BEGIN PRIVATE KEY-----\n");
    WriteFile(dir_.Join("token"), "  s3cret\n");
    WriteFile(dir_.Join("adapter.safetensors"), "x");
  }
  absl::Status Parse(std::vector<std::string> args) {
    args.insert(args.begin(),
                {"--model", dir_.path(), "--adapter", dir_.Join("adapter.safetensors")});
    return flagset_.Parse(args);
  }

  ScratchDir dir_;
  ServerFlags flags_;
  FlagSet flagset_;
};

TEST_F(ServerFlagsTest, DefaultsAreTheDocumentedOnes) {
  ASSERT_OK(Parse({}));
  EXPECT_EQ(flags_.listen, "0.0.0.0:50051");
  EXPECT_EQ(flags_.metrics_listen, "0.0.0.0:9091");
  EXPECT_EQ(flags_.runtime.device, "cpu");
  EXPECT_EQ(flags_.runtime.dtype, "float32");
  EXPECT_EQ(flags_.runtime.threads, 0);
  EXPECT_EQ(flags_.max_message_bytes, 67108864);
  EXPECT_EQ(flags_.drain_seconds, 30);
  EXPECT_TRUE(flags_.tls_cert.empty() && flags_.auth_token_file.empty());
  EXPECT_OK(ValidateServerFlags(flags_));
  for (const char* name : {"model", "adapter", "listen", "metrics_listen", "device", "dtype",
                           "threads", "max_message_bytes", "drain_seconds", "tls_cert", "tls_key",
                           "tls_client_ca", "auth_token_file"}) {
    EXPECT_THAT(flagset_.Effective(), HasSubstr(std::string(name) + "=")) << name;
  }
}

TEST_F(ServerFlagsTest, ParsesEveryFlag) {
  ASSERT_OK(Parse({"--listen",
                   "[::]:0",
                   "--metrics_listen=",
                   "--device",
                   "cuda:1",
                   "--dtype",
                   "bfloat16",
                   "--threads",
                   "2",
                   "--max_message_bytes",
                   "1024",
                   "--drain_seconds",
                   "0.5",
                   "--tls_cert",
                   dir_.Join("cert.pem"),
                   "--tls_key",
                   dir_.Join("key.pem"),
                   "--tls_client_ca",
                   dir_.Join("cert.pem"),
                   "--auth_token_file",
                   dir_.Join("token")}));
  EXPECT_EQ(flags_.listen, "[::]:0");
  EXPECT_EQ(flags_.metrics_listen, "");
  EXPECT_EQ(flags_.max_message_bytes, 1024);
  EXPECT_EQ(flags_.drain_seconds, 0.5);
  EXPECT_OK(ValidateServerFlags(flags_));
}

TEST_F(ServerFlagsTest, RejectsBadValuesNamingTheFlag) {
  ASSERT_OK(Parse({}));
  struct Case {
    std::function<void(ServerFlags&)> edit;
    std::string flag;
  };
  const std::string missing = dir_.Join("missing.pem");
  const std::vector<Case> cases = {
      {[](ServerFlags& f) { f.model = ""; }, "--model"},
      {[&](ServerFlags& f) { f.model = dir_.Join("adapter.safetensors"); }, "--model"},
      {[&](ServerFlags& f) { f.adapter = dir_.Join("nope"); }, "--adapter"},
      {[](ServerFlags& f) { f.runtime.device = "gpu"; }, "--device"},
      {[](ServerFlags& f) { f.runtime.device = "cuda:-1"; }, "--device"},
      {[](ServerFlags& f) { f.runtime.dtype = "float16"; }, "--dtype"},
      {[](ServerFlags& f) { f.runtime.threads = -1; }, "--threads"},
      {[](ServerFlags& f) { f.listen = "50051"; }, "--listen"},
      {[](ServerFlags& f) { f.listen = "0.0.0.0:65536"; }, "--listen"},
      {[](ServerFlags& f) { f.listen = ":::1"; }, "--listen"},
      {[](ServerFlags& f) { f.listen = "host:+5"; }, "--listen"},
      {[](ServerFlags& f) { f.metrics_listen = "0.0.0.0:x"; }, "--metrics_listen"},
      {[](ServerFlags& f) { f.metrics_listen = "0.0.0.0:50051"; }, "--metrics_listen"},
      {[](ServerFlags& f) { f.max_message_bytes = 0; }, "--max_message_bytes"},
      {[](ServerFlags& f) { f.max_message_bytes = int64_t{1} << 31; }, "--max_message_bytes"},
      {[](ServerFlags& f) { f.drain_seconds = -1; }, "--drain_seconds"},
      {[&](ServerFlags& f) { f.tls_cert = dir_.Join("cert.pem"); }, "--tls_key"},
      {[&](ServerFlags& f) { f.tls_key = dir_.Join("key.pem"); }, "--tls_cert"},
      {[&](ServerFlags& f) {
         f.tls_cert = missing;
         f.tls_key = dir_.Join("key.pem");
       },
       "--tls_cert"},
      {[&](ServerFlags& f) { f.tls_client_ca = dir_.Join("cert.pem"); }, "--tls_client_ca"},
      {[&](ServerFlags& f) {
         f.tls_cert = dir_.Join("cert.pem");
         f.tls_key = dir_.Join("key.pem");
         f.tls_client_ca = missing;
       },
       "--tls_client_ca"},
      {[&](ServerFlags& f) { f.auth_token_file = missing; }, "--auth_token_file"},
      {[&](ServerFlags& f) {
         WriteFile(dir_.Join("empty"), " \n");
         f.auth_token_file = dir_.Join("empty");
       },
       "--auth_token_file"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    ServerFlags edited = flags_;
    cases[i].edit(edited);
    EXPECT_THAT(ValidateServerFlags(edited),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(cases[i].flag)));
  }
}

TEST(HostPortTest, ParsesAndPrints) {
  absl::StatusOr<HostPort> v4 = ParseHostPort("127.0.0.1:0", "listen");
  ASSERT_OK(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  absl::StatusOr<HostPort> v6 = ParseHostPort("[::1]:9091", "listen");
  ASSERT_OK(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9091);
  EXPECT_EQ(v6->ToString(), "[::1]:9091");
  EXPECT_EQ(v4->ToString(), "127.0.0.1:0");
  EXPECT_FALSE(ParseHostPort("[::1:9091", "listen").ok());
  EXPECT_FALSE(ParseHostPort(":80", "listen").ok());
}

}  // namespace
}  // namespace icae

namespace icae {
namespace {

// The one parser of --device / --dtype / --threads (RuntimeOptions::Validate): the servers' flag
// check and the model loaders' ResolveRuntime agree on every spelling.
TEST(RuntimeOptionsTest, OneParserForEveryCaller) {
  RuntimeOptions options;
  EXPECT_OK(options.Validate());
  EXPECT_EQ(options.CanonicalDtype(), "float32");
  EXPECT_EQ(options.CudaIndex(), -1);
  for (const char* bf16 : {"bfloat16", "bf16"}) {
    options.dtype = bf16;
    EXPECT_OK(options.Validate());
    EXPECT_EQ(options.CanonicalDtype(), "bfloat16");
  }
  options.dtype = "fp32";
  EXPECT_OK(options.Validate());
  EXPECT_EQ(options.CanonicalDtype(), "float32");
  options.device = "cuda";
  EXPECT_EQ(options.CudaIndex(), 0);
  options.device = "cuda:3";
  EXPECT_OK(options.Validate());
  EXPECT_EQ(options.CudaIndex(), 3);
  for (const char* bad : {"cuda:", "cuda:-1", "cuda:+1", "gpu", "CPU"}) {
    options.device = bad;
    EXPECT_THAT(options.Validate(), testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                      ::testing::HasSubstr("--device")))
        << bad;
  }
}

}  // namespace
}  // namespace icae
