// Fixture of the integration tests: the real icae-encoder binary started on 127.0.0.1:0 (metrics
// on 127.0.0.1:0) over a scratch copy of the golden tiny model and adapter, and clients for it.
#ifndef ICAE_TESTS_ENCODER_SERVICE_ENCODER_SERVER_FIXTURE_H_
#define ICAE_TESTS_ENCODER_SERVICE_ENCODER_SERVER_FIXTURE_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/client/client_options.h"
#include "common/client/encoder_client.h"
#include "tests/common/serving/serving_test_util.h"
#include "tests/encoder_service/encoder_test_util.h"
#include "tests/encoder_service/server_process.h"
#include "tests/util/test_util.h"

namespace icae::testing {

class EncoderServerTest : public ::testing::Test {
 protected:
  // Copies the model (with a trained tokenizer when asked) and starts the server with `extra`
  // flags; fails the test when it does not come up.
  void StartServer(const std::vector<std::string>& extra = {}, bool tokenizer = false) {
    auto copy = MakeModelCopy(dir_.path(), tokenizer);
    ASSERT_TRUE(copy.ok()) << copy.status();
    copy_ = *std::move(copy);
    StartOn(copy_, extra);
  }

  void StartOn(const ModelCopy& copy, const std::vector<std::string>& extra,
               bool wait_serving = true) {
    std::vector<std::string> args = {
        "--model",     copy.model_dir,     "--adapter",   copy.adapter, "--listen",
        "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0", "--threads",  "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto server = ServerProcess::Start(BinDir() + "/icae-encoder", args,
                                       dir_.Join("server" + std::to_string(++servers_) + ".log"),
                                       /*expect_metrics=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    options_.addresses = {server_->address()};
    options_.max_attempts = 1;
    options_.timeout = absl::Seconds(60);
    if (wait_serving) {
      auto conn = Connection::Create(options_);
      ASSERT_TRUE(conn.ok()) << conn.status();
      absl::Status serving = WaitForServing(**conn, "", absl::Seconds(60));
      ASSERT_TRUE(serving.ok()) << serving << "\n" << server_->Log();
    }
  }

  EncoderClient Client() const { return Client(options_); }
  static EncoderClient Client(const ClientOptions& options) {
    auto conn = Connection::Create(options);
    EXPECT_TRUE(conn.ok()) << conn.status();
    return EncoderClient(*conn);
  }

  std::string Metrics() const {
    auto response = HttpGet(server_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : "";
  }
  double Metric(const std::string& name,
                const std::map<std::string, std::string>& labels = {}) const {
    return MetricValue(Metrics(), name, labels);
  }

  static v1::CompressRequest IdsRequest(const std::vector<std::vector<int>>& spans) {
    v1::CompressRequest request;
    for (size_t i = 0; i < spans.size(); ++i) {
      v1::Span* span = request.add_spans();
      span->set_id("span-" + std::to_string(i));
      span->mutable_token_ids()->mutable_ids()->Add(spans[i].begin(), spans[i].end());
    }
    return request;
  }

  void TearDown() override {
    if (HasFailure() && server_ != nullptr) {
      std::cerr << "---- server log ----\n" << server_->Log() << "--------------------\n";
    }
  }

  ScratchDir dir_;
  ModelCopy copy_;
  std::unique_ptr<ServerProcess> server_;
  ClientOptions options_;
  int servers_ = 0;
};

}  // namespace icae::testing

#endif  // ICAE_TESTS_ENCODER_SERVICE_ENCODER_SERVER_FIXTURE_H_
