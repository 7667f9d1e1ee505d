// The decoder server tests' fixture: real icae-decoder processes on loopback, started on first
// use (ctest runs every test in its own process), clients, and small helpers.
//   Tiny(): tiny-llama (with a tokenizer trained at test time) + tiny-icae, --max_running 8.
//   Slow(): a random model whose decode steps take milliseconds, so running requests can be
//           watched; --max_running 2 --max_waiting 1.
#ifndef ICAE_TESTS_DECODER_SERVICE_SERVER_FIXTURE_H_
#define ICAE_TESTS_DECODER_SERVICE_SERVER_FIXTURE_H_

#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/client/decoder_client.h"
#include "common/client/encoder_client.h"
#include "common/client/health_client.h"
#include "common/codec/tensor_codec.h"
#include "common/io/slots_file.h"
#include "common/model/adapter_writer.h"
#include "decoder_service/engine/offline.h"
#include "common/model/slot_decoder.h"
#include "common/serving/status_grpc.h"
#include "tests/common/serving/serving_test_util.h"
#include "tests/decoder_service/decoder_test_util.h"
#include "tests/util/test_util.h"
#include "tools/bench/random_icae_model.h"

namespace icae::decoder {

using ::icae::testing::HttpGet;
using ::icae::testing::IcaeFixture;
using ::icae::testing::MetricValue;
using ::icae::testing::ScratchDir;
using ::icae::testing::ServerProcess;
using ::icae::testing::StatusIs;
using ::icae::testing::ToIds;
using ::testing::AllOf;
using ::testing::HasSubstr;

inline const std::string kDecoderBin = std::string(ICAE_BIN_DIR) + "/icae-decoder";
inline const std::string kEncoderBin = std::string(ICAE_BIN_DIR) + "/icae-encoder";
inline const std::string kCliBin = std::string(ICAE_BIN_DIR) + "/icae";

// Runs a command line; its exit code, and stdout / stderr in the given files.
inline int RunCommand(const std::string& command, const std::string& out, const std::string& err) {
  const int status = std::system((command + " > " + out + " 2> " + err).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<int> Ids(const google::protobuf::RepeatedField<int32_t>& ids) {
  return std::vector<int>(ids.begin(), ids.end());
}

// A context part holding `slots` as a wire tensor of `dtype`.
inline v1::ContextPart SlotsPart(const at::Tensor& slots, const std::string& encoder_id,
                                 v1::DataType dtype = v1::FLOAT32) {
  v1::ContextPart part;
  v1::MemorySlots* m = part.mutable_slots();
  EXPECT_OK(EncodeTensor(slots, dtype, m->mutable_slots()));
  m->set_kind(v1::EMBEDDING);
  m->set_encoder_id(encoder_id);
  m->set_source_tokens(4 * static_cast<int>(slots.size(0)));
  m->set_mem_size(4);
  m->set_num_segments(static_cast<int>(slots.size(0)) / 4);
  return part;
}

// A metric of a server process's /metrics (-1 when it cannot be read: a test failure).
inline double ProcessMetric(const ServerProcess& process, const std::string& name,
                            const std::map<std::string, std::string>& labels = {}) {
  absl::StatusOr<std::string> text = HttpGet(process.metrics_port(), "/metrics");
  EXPECT_OK(text);
  return text.ok() ? MetricValue(*text, name, labels) : -1;
}

struct Server {
  ServerProcess process;
  std::shared_ptr<const Connection> connection;
  std::unique_ptr<DecoderClient> client;
  std::unique_ptr<v1::Decoder::Stub> stub;
  v1::DecoderInfo info;

  absl::StatusOr<std::string> Metrics() const {
    return HttpGet(process.metrics_port(), "/metrics");
  }
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return ProcessMetric(process, name, labels);
  }
  // Polls until `name` == `value` (true) or 10 s pass.
  bool AwaitMetric(const std::string& name, double value) {
    for (int i = 0; i < 500; ++i) {
      if (Metric(name) == value) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }
};

// `client` gives the TLS and token settings of the test's connection (addresses are filled in).
// A real icae-encoder on loopback (one thread, no metrics) and a client to it.
struct EncoderProcess {
  ServerProcess process;
  std::unique_ptr<EncoderClient> client;
};
inline std::unique_ptr<EncoderProcess> StartEncoder(const std::string& model_dir,
                                                    const std::string& adapter,
                                                    const std::string& log) {
  auto encoder = std::make_unique<EncoderProcess>();
  EXPECT_OK(encoder->process.Start(kEncoderBin,
                                   {"--model", model_dir, "--adapter", adapter, "--listen",
                                    "127.0.0.1:0", "--metrics_listen", "", "--threads", "1"},
                                   log));
  ClientOptions options;
  options.addresses = {encoder->process.address()};
  options.max_attempts = 1;
  auto connection = Connection::Create(options);
  EXPECT_OK(connection);
  if (!connection.ok()) return encoder;
  EXPECT_OK(WaitForServing(**connection, "icae.v1.Encoder", absl::Seconds(60)))
      << encoder->process.Log();
  encoder->client = std::make_unique<EncoderClient>(*connection);
  return encoder;
}

inline std::unique_ptr<Server> StartDecoder(const std::string& model_dir,
                                            const std::string& adapter,
                                            const std::vector<std::string>& extra,
                                            const std::string& log, ClientOptions options = {}) {
  auto server = std::make_unique<Server>();
  std::vector<std::string> args = {
      "--model",     model_dir,          "--adapter",   adapter,     "--listen",
      "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  absl::Status started = server->process.Start(kDecoderBin, args, log);
  EXPECT_OK(started);
  if (!started.ok()) return nullptr;
  options.addresses = {server->process.address()};
  options.max_attempts = 1;
  auto connection = Connection::Create(options);
  EXPECT_OK(connection);
  if (!connection.ok()) return nullptr;
  server->connection = *connection;
  EXPECT_OK(WaitForServing(*server->connection, "icae.v1.Decoder", absl::Seconds(60)))
      << server->process.Log();
  server->client = std::make_unique<DecoderClient>(server->connection);
  server->stub = v1::Decoder::NewStub(server->connection->channel());
  auto info = server->client->GetInfo();
  EXPECT_OK(info);
  if (info.ok()) server->info = *info;
  return server;
}

// Reads a stream to its end; the chunks and the final status.
struct StreamResult {
  std::vector<v1::GenerateChunk> chunks;
  absl::Status status;
  std::vector<int> ids() const {
    std::vector<int> out;
    for (const auto& c : chunks) out.insert(out.end(), c.token_ids().begin(), c.token_ids().end());
    return out;
  }
  std::string text() const {
    std::string out;
    for (const auto& c : chunks) out += c.text();
    return out;
  }
};

inline StreamResult Stream(const DecoderClient& client, const v1::GenerateRequest& request) {
  StreamResult result;
  result.status = client.GenerateStream(request, [&](const v1::GenerateChunk& chunk) {
    result.chunks.push_back(chunk);
    return true;
  });
  return result;
}

class DecoderServerTest : public ::testing::Test {
 protected:
  // ctest runs each test in its own process: servers start on first use only.
  static void SetUpTestSuite() { scratch_ = new ScratchDir(); }
  static void TearDownTestSuite() {
    delete tiny_;
    delete slow_;
    delete scratch_;
    tiny_ = slow_ = nullptr;
    kv_adapter_.clear();
    slow_paths_ = RandomIcaePaths();
  }

  // tiny-llama (with a trained tokenizer) + tiny-icae.
  static Server* Tiny() {
    if (tiny_ == nullptr) {
      model_dir_ = scratch_->Join("tiny-llama");
      EXPECT_OK(testing::MakeTokenizedTinyLlama(model_dir_));
      tiny_ = StartDecoder(model_dir_, testing::TinyAdapter(), {"--max_running", "8"},
                           scratch_->Join("tiny.log"))
                  .release();
    }
    return tiny_;
  }
  static const std::string& TinyModelDir() {
    Tiny();
    return model_dir_;
  }
  // A random KV-slot adapter (500xCompressor) for the tokenized tiny-llama (mem_size 4, rate 4).
  static const std::string& KvAdapter() {
    if (kv_adapter_.empty()) {
      auto config = LoadModelConfig(TinyModelDir());
      EXPECT_OK(config);
      AdapterConfig ac;
      ac.r = 4;
      ac.lora_alpha = 8;
      ac.target_modules = {"q_proj", "v_proj"};
      ac.mem_size = 4;
      ac.compression_rate = 4;
      ac.slot_kind = SlotKind::kKv;
      EXPECT_OK(SaveIcaeAdapter(scratch_->Join("kv"), RandomAdapter(*config, ac, 21), "tiny"));
      kv_adapter_ = scratch_->Join("kv/adapter.safetensors");
    }
    return kv_adapter_;
  }
  // A random model whose decode steps take milliseconds, so running requests can be watched.
  static const RandomIcaePaths& SlowModel() {
    if (slow_paths_.model_dir.empty()) {
      EXPECT_OK(WriteRandomIcaeModel(scratch_->Join("slow"),
                                     RandomLlamaConfig(512, 6, 8, 1376, 512, 2048),
                                     /*mem_size=*/4, /*lora_r=*/4, /*seed=*/11, &slow_paths_));
    }
    return slow_paths_;
  }
  static Server* Slow() {
    if (slow_ == nullptr) {
      slow_ = StartDecoder(SlowModel().model_dir, SlowModel().adapter,
                           // No slot-prefix reuse: the KV gauges read 0 when nothing runs.
                           {"--max_running", "2", "--max_waiting", "1", "--max_new_tokens", "2000",
                            "--prefix_cache_bytes", "0"},
                           scratch_->Join("slow.log"))
                  .release();
    }
    return slow_;
  }

  static v1::GenerateRequest AeRequest(const std::string& slots_name, int max_new_tokens) {
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(IcaeFixture(slots_name), Tiny()->info.accepted_encoder_id());
    request.set_template_name("ae");
    request.set_max_new_tokens(max_new_tokens);
    return request;
  }
  // A long generation on the slow model: random token context, raw template, EOS ignored.
  static v1::GenerateRequest SlowRequest(int max_new_tokens) {
    v1::GenerateRequest request;
    v1::TokenIds* ids = request.add_context()->mutable_token_ids();
    for (int i = 0; i < 8; ++i) ids->add_ids(3 + i * 17);
    request.set_template_name("raw");
    request.set_max_new_tokens(max_new_tokens);
    request.set_ignore_eos(true);
    return request;
  }

  inline static ScratchDir* scratch_ = nullptr;
  inline static std::string model_dir_;
  inline static std::string kv_adapter_;
  inline static Server* tiny_ = nullptr;
  inline static Server* slow_ = nullptr;
  inline static RandomIcaePaths slow_paths_;
};

}  // namespace icae::decoder

#endif  // ICAE_TESTS_DECODER_SERVICE_SERVER_FIXTURE_H_
