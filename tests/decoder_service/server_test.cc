// The real icae-decoder binary on loopback (and icae-encoder in front of it when built):
//   - tiny-llama + tiny-icae (with a tokenizer trained at test time): golden ids from slots,
//     streaming equals unary, mixed slots + text equals the offline library, concurrency,
//     every refusal code;
//   - a random model slow enough to watch: a cancelled stream leaves the running batch (gauges),
//     a full queue, a deadline, and SIGTERM while streams are running.
#include <gmock/gmock.h>
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
#include "common/model/generate.h"
#include "common/model/slot_decoder.h"
#include "common/serving/status_grpc.h"
#include "tests/common/serving/serving_test_util.h"
#include "tests/decoder_service/decoder_test_util.h"
#include "tests/util/test_util.h"
#include "tools/bench/random_icae_model.h"

namespace icae::decoder {
namespace {

using ::icae::testing::HttpGet;
using ::icae::testing::IcaeFixture;
using ::icae::testing::MetricValue;
using ::icae::testing::ScratchDir;
using ::icae::testing::ServerProcess;
using ::icae::testing::StatusIs;
using ::icae::testing::ToIds;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kDecoderBin = std::string(ICAE_BIN_DIR) + "/icae-decoder";
const std::string kEncoderBin = std::string(ICAE_BIN_DIR) + "/icae-encoder";
const std::string kCliBin = std::string(ICAE_BIN_DIR) + "/icae";

// Runs a command line; its exit code, and stdout / stderr in the given files.
int RunCommand(const std::string& command, const std::string& out, const std::string& err) {
  const int status = std::system((command + " > " + out + " 2> " + err).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int> Ids(const google::protobuf::RepeatedField<int32_t>& ids) {
  return std::vector<int>(ids.begin(), ids.end());
}

// A context part holding `slots` as a wire tensor of `dtype`.
v1::ContextPart SlotsPart(const at::Tensor& slots, const std::string& encoder_id,
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
    absl::StatusOr<std::string> text = Metrics();
    EXPECT_OK(text);
    return text.ok() ? MetricValue(*text, name, labels) : -1;
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
std::unique_ptr<Server> StartDecoder(const std::string& model_dir, const std::string& adapter,
                                     const std::vector<std::string>& extra, const std::string& log,
                                     ClientOptions options = {}) {
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

StreamResult Stream(const DecoderClient& client, const v1::GenerateRequest& request) {
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
                           {"--max_running", "2", "--max_waiting", "1", "--max_new_tokens", "2000"},
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

  static ScratchDir* scratch_;
  static std::string model_dir_;
  static Server* tiny_;
  static Server* slow_;
  static RandomIcaePaths slow_paths_;
};
ScratchDir* DecoderServerTest::scratch_ = nullptr;
std::string DecoderServerTest::model_dir_;
Server* DecoderServerTest::tiny_ = nullptr;
Server* DecoderServerTest::slow_ = nullptr;
RandomIcaePaths DecoderServerTest::slow_paths_;

TEST_F(DecoderServerTest, InfoHealthAndMetricsDescribeTheModel) {
  const v1::DecoderInfo& info = Tiny()->info;
  EXPECT_EQ(info.base_model(), "tiny-llama");
  EXPECT_EQ(info.architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info.adapter(), "adapter.safetensors");
  EXPECT_EQ(info.accepted_encoder_id().size(), 64u);
  EXPECT_EQ(info.hidden_size(), 64);
  EXPECT_EQ(info.vocab_size(), 384);
  EXPECT_EQ(info.mem_size(), 4);
  EXPECT_EQ(info.max_context_tokens(), 512);
  EXPECT_EQ(info.max_new_tokens(), 512);
  EXPECT_EQ(info.templates_size(), 4);
  EXPECT_EQ(info.compute_dtype(), v1::FLOAT32);
  EXPECT_EQ(info.version(), "0.1.0");
  EXPECT_EQ(info.max_message_bytes(), 64 << 20);
  EXPECT_EQ(info.max_running(), 8);
  EXPECT_EQ(info.max_kv_tokens(), 65536);
  EXPECT_EQ(CheckHealth(*Tiny()->connection, "").value_or(HealthState::kUnknown),
            HealthState::kServing);
  absl::StatusOr<std::string> metrics = Tiny()->Metrics();
  ASSERT_OK(metrics);
  EXPECT_EQ(MetricValue(*metrics, "icae_decoder_info",
                        {{"adapter", "adapter.safetensors"},
                         {"base_model", "tiny-llama"},
                         {"device", "cpu"},
                         {"dtype", "float32"},
                         {"encoder_id", info.accepted_encoder_id()},
                         {"version", "0.1.0"}}),
            1);
  EXPECT_EQ(MetricValue(*metrics, "icae_decoder_kv_cache_tokens_capacity"), 65536);
  for (const char* name :
       {"icae_decoder_time_to_first_token_seconds_count",
        "icae_decoder_inter_token_latency_seconds_count",
        "icae_decoder_e2e_request_latency_seconds_count",
        "icae_decoder_request_queue_time_seconds_count", "icae_decoder_num_requests_running",
        "icae_decoder_num_requests_waiting", "icae_decoder_kv_cache_tokens_used",
        "icae_decoder_prompt_tokens_total", "icae_decoder_slot_tokens_total",
        "icae_decoder_uncompressed_context_tokens_total", "icae_decoder_generation_tokens_total",
        "icae_decoder_batch_size_count"}) {
    EXPECT_GE(MetricValue(*metrics, name), 0) << name;
  }
  EXPECT_GE(
      MetricValue(*metrics, "icae_decoder_requests_finished_total", {{"finish_reason", "eos"}}), 0);
}

TEST_F(DecoderServerTest, GoldenIdsFromSlotsUnaryAndStreaming) {
  for (const auto& [slots, expected] :
       {std::pair<std::string, std::string>{"slots", "ae_greedy_ids"},
        {"slots40", "ae40_greedy_ids"}}) {
    v1::GenerateRequest request = AeRequest(slots, 12);
    request.set_request_id("golden-" + slots);
    absl::StatusOr<v1::GenerateResponse> response = Tiny()->client->Generate(request);
    ASSERT_OK(response);
    EXPECT_EQ(Ids(response->token_ids()), ToIds(IcaeFixture(expected))) << slots;
    EXPECT_EQ(response->finish_reason(), v1::LENGTH);
    EXPECT_EQ(response->request_id(), "golden-" + slots);
    const int n = static_cast<int>(IcaeFixture(slots).size(0));
    EXPECT_EQ(response->usage().slot_tokens(), n);
    EXPECT_EQ(response->usage().prompt_tokens(), 1);
    EXPECT_EQ(response->usage().generated_tokens(), 12);
    EXPECT_EQ(response->usage().uncompressed_context_tokens(), 4 * n);
    EXPECT_GT(response->usage().kv_cache_bytes(), 0);

    StreamResult stream = Stream(*Tiny()->client, request);
    ASSERT_OK(stream.status);
    EXPECT_EQ(stream.ids(), Ids(response->token_ids()));
    EXPECT_EQ(stream.text(), response->text());
    ASSERT_GE(stream.chunks.size(), 2u);
    for (size_t i = 0; i + 1 < stream.chunks.size(); ++i) {
      EXPECT_EQ(stream.chunks[i].finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
      EXPECT_FALSE(stream.chunks[i].has_usage());
    }
    const v1::GenerateChunk& last = stream.chunks.back();
    EXPECT_EQ(last.finish_reason(), v1::LENGTH);
    EXPECT_EQ(last.usage().generated_tokens(), 12);
    EXPECT_EQ(last.request_id(), "golden-" + slots);
  }
  // Slots sent as bfloat16 are accepted (cast to the compute dtype).
  v1::GenerateRequest bf16;
  *bf16.add_context() =
      SlotsPart(IcaeFixture("slots"), Tiny()->info.accepted_encoder_id(), v1::BFLOAT16);
  bf16.set_template_name("ae");
  bf16.set_max_new_tokens(12);
  absl::StatusOr<v1::GenerateResponse> response = Tiny()->client->Generate(bf16);
  ASSERT_OK(response);
  EXPECT_EQ(response->token_ids_size(), 12);
}

TEST_F(DecoderServerTest, MixedSlotsAndTextMatchTheOfflineLibrary) {
  const std::string text = "Paris is the capital of France.";
  const std::string prompt = "What is the capital?";
  v1::GenerateRequest request;
  *request.add_context() = SlotsPart(IcaeFixture("slots"), Tiny()->info.accepted_encoder_id());
  request.add_context()->set_text(text);
  *request.add_context() = SlotsPart(IcaeFixture("slots40"), Tiny()->info.accepted_encoder_id());
  request.set_prompt(prompt);
  request.set_template_name("icae-v2-instruct");
  request.set_max_new_tokens(24);
  request.mutable_sampling()->set_temperature(0.8f);
  request.mutable_sampling()->set_top_k(50);
  request.mutable_sampling()->set_seed(1234);
  request.set_ignore_eos(false);
  absl::StatusOr<v1::GenerateResponse> response = Tiny()->client->Generate(request);
  ASSERT_OK(response);

  // The same prompt built and decoded in-process by the library the server runs.
  auto model = SlotDecoder::Load(TinyModelDir(), testing::TinyAdapter(), Runtime());
  ASSERT_OK(model);
  auto text_ids = (*model)->Tokenize(text);
  auto prompt_ids = (*model)->Tokenize(prompt);
  ASSERT_OK(text_ids);
  ASSERT_OK(prompt_ids);
  std::vector<ContextPart> context(3);
  context[0].slots = IcaeFixture("slots");
  context[1].token_ids = *text_ids;
  context[2].slots = IcaeFixture("slots40");
  PromptUsage usage;
  auto embeds =
      (*model)->BuildPrompt(PromptTemplate::kIcaeV2Instruct, context, *prompt_ids, &usage);
  ASSERT_OK(embeds);
  GenerationParams params;
  params.max_new_tokens = 24;
  params.sampling.temperature = 0.8f;
  params.sampling.top_k = 50;
  params.sampling.seed = 1234;
  auto expected = GenerateBatch(**model, {GenerationInput{*embeds, params}});
  ASSERT_OK(expected);
  EXPECT_EQ(Ids(response->token_ids()), (*expected)[0].ids);
  EXPECT_EQ(response->text(), (*expected)[0].text);
  EXPECT_EQ(response->finish_reason(),
            (*expected)[0].finish_reason == FinishReason::kEos ? v1::EOS : v1::LENGTH);
  EXPECT_EQ(response->usage().slot_tokens(), 16);
  EXPECT_EQ(response->usage().prompt_tokens(), usage.text_tokens);
  EXPECT_EQ(response->usage().uncompressed_context_tokens(),
            16 + 48 + static_cast<int>(text_ids->size()));

  // A stop string taken from the middle of that text ends generation there, unreturned.
  // (Two ASCII characters, so the stop string is valid UTF-8.)
  const std::string& full = response->text();
  size_t at = full.size() / 2;
  while (at + 1 < full.size() &&
         !(absl::ascii_isalnum(full[at]) && absl::ascii_isalnum(full[at + 1]))) {
    ++at;
  }
  if (at + 1 < full.size()) {
    const std::string stop = full.substr(at, 2);
    request.add_stop(stop);
    absl::StatusOr<v1::GenerateResponse> stopped = Tiny()->client->Generate(request);
    ASSERT_OK(stopped);
    EXPECT_EQ(stopped->finish_reason(), v1::STOP);
    EXPECT_EQ(stopped->text(), full.substr(0, full.find(stop)));
    StreamResult stream = Stream(*Tiny()->client, request);
    ASSERT_OK(stream.status);
    EXPECT_EQ(stream.text(), stopped->text());
    EXPECT_EQ(stream.chunks.back().finish_reason(), v1::STOP);
  }
}

TEST_F(DecoderServerTest, ConcurrentGreedyRequestsGiveTheSameIdsAsAlone) {
  auto request_for = [](int i) {
    v1::GenerateRequest request = AeRequest(i % 2 == 0 ? "slots" : "slots40", 120);
    v1::TokenIds* ids = request.add_context()->mutable_token_ids();
    for (int k = 0; k < 3 + i; ++k) ids->add_ids(5 + (i * 31 + k * 7) % 370);
    request.set_template_name(i % 3 == 0 ? "icae-v1" : "raw");
    request.mutable_prompt_ids()->add_ids(10 + i);
    request.set_ignore_eos(true);
    return request;
  };
  std::vector<std::vector<int>> alone;
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<v1::GenerateResponse> response = Tiny()->client->Generate(request_for(i));
    ASSERT_OK(response);
    alone.push_back(Ids(response->token_ids()));
  }
  const double steps_before = Tiny()->Metric("icae_decoder_batch_size_count");
  const double rows_before = Tiny()->Metric("icae_decoder_batch_size_sum");
  std::vector<std::vector<int>> together(8);
  std::vector<absl::Status> statuses(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      if (i % 2 == 0) {
        auto response = Tiny()->client->Generate(request_for(i));
        statuses[i] = response.status();
        if (response.ok()) together[i] = Ids(response->token_ids());
      } else {
        StreamResult stream = Stream(*Tiny()->client, request_for(i));
        statuses[i] = stream.status;
        together[i] = stream.ids();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_OK(statuses[i]);
    EXPECT_EQ(together[i], alone[i]) << "request " << i;
  }
  // The concurrent requests did share decode steps.
  const double steps = Tiny()->Metric("icae_decoder_batch_size_count") - steps_before;
  const double rows = Tiny()->Metric("icae_decoder_batch_size_sum") - rows_before;
  EXPECT_GT(rows, steps);
}

TEST_F(DecoderServerTest, RefusalsCarryTheirCodes) {
  const std::string& id = Tiny()->info.accepted_encoder_id();
  auto both = [&](const v1::GenerateRequest& request) {
    absl::Status unary = Tiny()->client->Generate(request).status();
    absl::Status stream = Stream(*Tiny()->client, request).status;
    EXPECT_EQ(unary.code(), stream.code()) << unary << " / " << stream;
    return unary;
  };
  {
    v1::GenerateRequest request = AeRequest("slots", 8);
    request.mutable_context(0)->mutable_slots()->set_encoder_id(std::string(64, 'a'));
    EXPECT_THAT(both(request), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        AllOf(HasSubstr(std::string(64, 'a')), HasSubstr(id))));
  }
  {
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(IcaeFixture("slots").narrow(1, 0, 32), id);
    EXPECT_THAT(both(request),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[n > 0, 64]")));
  }
  {
    v1::GenerateRequest request = AeRequest("slots", 8);
    std::string* data =
        request.mutable_context(0)->mutable_slots()->mutable_slots()->mutable_data();
    data->resize(data->size() - 4);
    EXPECT_THAT(both(request),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context[0].slots.slots")));
  }
  {
    at::Tensor nan = IcaeFixture("slots").clone();
    nan[1][3] = std::nan("");
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(nan, id);
    EXPECT_THAT(both(request), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
  }
  {
    v1::GenerateRequest request = AeRequest("slots", 8);
    request.mutable_context(0)->mutable_slots()->set_kind(v1::KV);
    EXPECT_THAT(both(request), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("KV")));
  }
  {
    v1::GenerateRequest request = AeRequest("slots", 8);
    v1::TokenIds* ids = request.add_context()->mutable_token_ids();
    for (int i = 0; i < 600; ++i) ids->add_ids(7);
    EXPECT_THAT(both(request), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("--max_context_tokens is 512")));
  }
  {
    v1::GenerateRequest request = AeRequest("slots", 8);
    request.add_context();  // Neither slots nor text.
    EXPECT_THAT(both(request),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context[1]")));
  }
  EXPECT_THAT(both(AeRequest("slots", 513)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_new_tokens")));
  EXPECT_GE(Tiny()->Metric("icae_decoder_requests_total",
                           {{"code", "FAILED_PRECONDITION"}, {"method", "GenerateStream"}}),
            1);
  EXPECT_GE(Tiny()->Metric("icae_decoder_requests_total",
                           {{"code", "INVALID_ARGUMENT"}, {"method", "Generate"}}),
            7);
}

TEST_F(DecoderServerTest, ASlowReaderDoesNotStallTheScheduler) {
  const std::map<std::string, std::string> length = {{"finish_reason", "length"}};
  const double finished_before = Tiny()->Metric("icae_decoder_requests_finished_total", length);
  grpc::ClientContext context;
  Tiny()->connection->PrepareContext(&context);
  v1::GenerateRequest request = AeRequest("slots", 480);
  request.set_ignore_eos(true);
  auto reader = Tiny()->stub->GenerateStream(&context, request);
  v1::GenerateChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  int ids = chunk.token_ids_size();
  // The client reads nothing more, yet its generation completes and others are served.
  absl::StatusOr<v1::GenerateResponse> other = Tiny()->client->Generate(AeRequest("slots", 12));
  ASSERT_OK(other);
  EXPECT_EQ(Ids(other->token_ids()), ToIds(IcaeFixture("ae_greedy_ids")));
  bool done = false;
  for (int i = 0; i < 500 && !done; ++i) {
    done = Tiny()->Metric("icae_decoder_requests_finished_total", length) >= finished_before + 2;
    if (!done) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(done) << "the unread stream's generation did not finish";
  int chunks = 1;
  while (reader->Read(&chunk)) {
    ids += chunk.token_ids_size();
    ++chunks;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(ids, 480);
  EXPECT_EQ(chunk.finish_reason(), v1::LENGTH);
  std::cout << "480 tokens arrived in " << chunks << " chunks\n";
}

TEST_F(DecoderServerTest, CancelledStreamLeavesTheRunningBatch) {
  const double cancelled_before =
      Slow()->Metric("icae_decoder_requests_finished_total", {{"finish_reason", "cancelled"}});
  grpc::ClientContext context;
  Slow()->connection->PrepareContext(&context);
  auto reader = Slow()->stub->GenerateStream(&context, SlowRequest(1500));
  v1::GenerateChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk)) << FromGrpcStatus(reader->Finish());
  EXPECT_EQ(Slow()->Metric("icae_decoder_num_requests_running"), 1);
  EXPECT_EQ(Slow()->Metric("icae_decoder_kv_cache_tokens_used"), 8 + 1500);
  context.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_running", 0));
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_kv_cache_tokens_used", 0));
  EXPECT_EQ(
      Slow()->Metric("icae_decoder_requests_finished_total", {{"finish_reason", "cancelled"}}),
      cancelled_before + 1);
  // It stopped early: far fewer than 1500 tokens were generated in all.
  EXPECT_LT(Slow()->Metric("icae_decoder_generation_tokens_total"), 1000);
}

TEST_F(DecoderServerTest, FullQueueAndDeadline) {
  // --max_running 2 --max_waiting 1: two run, one waits, the fourth is refused.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateChunk>>> readers;
  for (int i = 0; i < 3; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    Slow()->connection->PrepareContext(contexts.back().get());
    readers.push_back(Slow()->stub->GenerateStream(contexts.back().get(), SlowRequest(1500)));
    if (i < 2) {
      v1::GenerateChunk chunk;
      ASSERT_TRUE(readers.back()->Read(&chunk));
    }
  }
  ASSERT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_waiting", 1));
  EXPECT_EQ(Slow()->Metric("icae_decoder_num_requests_running"), 2);
  EXPECT_THAT(Slow()->client->Generate(SlowRequest(10)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_waiting 1")));
  for (auto& context : contexts) context->TryCancel();
  for (auto& reader : readers) {
    v1::GenerateChunk chunk;
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_running", 0));
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_waiting", 0));

  // A deadline that passes mid-generation stops it.
  EXPECT_EQ(Slow()->client->Generate(SlowRequest(1500), absl::Milliseconds(400)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_num_requests_running", 0));
  EXPECT_TRUE(Slow()->AwaitMetric("icae_decoder_kv_cache_tokens_used", 0));
}

TEST_F(DecoderServerTest, SigtermLetsRunningStreamsFinish) {
  // Served over TLS with a bearer token, as a deployment would be.
  std::filesystem::create_directories(scratch_->Join("certs"));
  absl::StatusOr<testing::TestCerts> certs = testing::MakeTestCerts(scratch_->Join("certs"));
  ASSERT_OK(certs);
  const std::string token_file = scratch_->Join("token");
  std::ofstream(token_file) << "s3cret-token\n";
  ClientOptions tls;
  tls.tls_ca_file = certs->ca_cert;
  tls.tls_server_name = "localhost";
  tls.auth_token = "s3cret-token";
  std::unique_ptr<Server> server =
      StartDecoder(SlowModel().model_dir, SlowModel().adapter,
                   {"--drain_seconds", "60", "--tls_cert", certs->server_cert, "--tls_key",
                    certs->server_key, "--auth_token_file", token_file},
                   scratch_->Join("sigterm.log"), tls);
  ASSERT_NE(server, nullptr);
  {
    ClientOptions no_token = tls;
    no_token.auth_token.clear();
    no_token.addresses = {server->process.address()};
    auto connection = Connection::Create(no_token);
    ASSERT_OK(connection);
    EXPECT_EQ(DecoderClient(*connection).Generate(SlowRequest(4)).status().code(),
              absl::StatusCode::kUnauthenticated);
  }
  constexpr int kStreams = 3;
  constexpr int kTokens = 200;
  std::atomic<int> started{0};
  std::vector<StreamResult> results(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      bool first = true;
      results[i].status =
          server->client->GenerateStream(SlowRequest(kTokens), [&](const v1::GenerateChunk& chunk) {
            results[i].chunks.push_back(chunk);
            if (first) ++started, first = false;
            return true;
          });
    });
  }
  while (started.load() < kStreams) absl::SleepFor(absl::Milliseconds(5));
  server->process.Signal(SIGTERM);
  // Draining: health goes NOT_SERVING and new calls are refused, while the streams go on.
  bool not_serving = false;
  for (int i = 0; i < 200 && !not_serving; ++i) {
    not_serving =
        CheckHealth(*server->connection, "icae.v1.Decoder").value_or(HealthState::kUnknown) ==
        HealthState::kNotServing;
    if (!not_serving) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(not_serving);
  EXPECT_EQ(server->client->Generate(SlowRequest(4)).status().code(),
            absl::StatusCode::kUnavailable);
  for (std::thread& t : threads) t.join();
  for (const StreamResult& r : results) {
    EXPECT_OK(r.status);
    EXPECT_EQ(r.ids().size(), static_cast<size_t>(kTokens));
    ASSERT_FALSE(r.chunks.empty());
    EXPECT_EQ(r.chunks.back().finish_reason(), v1::LENGTH);
  }
  absl::StatusOr<int> exit_code = server->process.Wait(absl::Seconds(30));
  ASSERT_OK(exit_code);
  EXPECT_EQ(*exit_code, 0) << server->process.Log();
}

TEST_F(DecoderServerTest, CliGeneratesThroughTheDecoder) {
  // A slots file as `icae compress` writes it, holding the golden slots.
  SlotsFile file;
  file.shape = {4, 64};
  at::Tensor slots = IcaeFixture("slots").contiguous();
  file.data.assign(reinterpret_cast<const char*>(slots.data_ptr<float>()), 4 * 64 * 4);
  file.encoder_id = Tiny()->info.accepted_encoder_id();
  file.source_tokens = 16;
  file.num_segments = 1;
  file.mem_size = 4;
  const std::string path = scratch_->Join("golden.slots.safetensors");
  ASSERT_OK(WriteSlotsFile(path, file));
  const std::string out = scratch_->Join("cli.out"), err = scratch_->Join("cli.err");
  ASSERT_EQ(
      RunCommand(absl::StrCat(kCliBin, " generate --decoder ", Tiny()->process.address(),
                              " --slots ", path, " --template ae --max-new-tokens 12 --print-ids"),
                 out, err),
      0)
      << ReadFile(err);
  EXPECT_EQ(ReadFile(out), absl::StrJoin(ToIds(IcaeFixture("ae_greedy_ids")), ",") + "\n");
  EXPECT_THAT(ReadFile(err), HasSubstr("finish_reason=length generated=12 slot_tokens=4"));
  // Streamed text equals the unary answer's.
  ASSERT_EQ(RunCommand(absl::StrCat(kCliBin, " generate --decoder ", Tiny()->process.address(),
                                    " --slots ", path, " --template ae --max-new-tokens 12"),
                       out, err),
            0)
      << ReadFile(err);
  absl::StatusOr<v1::GenerateResponse> unary = Tiny()->client->Generate(AeRequest("slots", 12));
  ASSERT_OK(unary);
  EXPECT_EQ(ReadFile(out), unary->text() + "\n");
  // A refusal is exit code 1 with the server's message.
  file.encoder_id = std::string(64, 'b');
  ASSERT_OK(WriteSlotsFile(path, file));
  EXPECT_EQ(RunCommand(absl::StrCat(kCliBin, " generate --decoder ", Tiny()->process.address(),
                                    " --slots ", path, " --template ae"),
                       out, err),
            1);
  EXPECT_THAT(ReadFile(err), HasSubstr("FAILED_PRECONDITION"));
}

TEST_F(DecoderServerTest, SlotsFromTheEncoderDecodeToTheGoldenIds) {
  if (access(kEncoderBin.c_str(), X_OK) != 0) GTEST_SKIP() << "icae-encoder is not built";
  ServerProcess encoder;
  ASSERT_OK(encoder.Start(kEncoderBin,
                          {"--model", TinyModelDir(), "--adapter", testing::TinyAdapter(),
                           "--listen", "127.0.0.1:0", "--metrics_listen", "", "--threads", "1"},
                          scratch_->Join("encoder.log")));
  ClientOptions options;
  options.addresses = {encoder.address()};
  options.max_attempts = 1;
  auto connection = Connection::Create(options);
  ASSERT_OK(connection);
  ASSERT_OK(WaitForServing(**connection, "icae.v1.Encoder", absl::Seconds(60))) << encoder.Log();
  EncoderClient client(*connection);
  for (const auto& [ids_name, expected] :
       {std::pair<std::string, std::string>{"context_ids", "ae_greedy_ids"},
        {"context40_ids", "ae40_greedy_ids"}}) {
    v1::CompressRequest compress;
    v1::TokenIds* ids = compress.add_spans()->mutable_token_ids();
    for (int id : ToIds(IcaeFixture(ids_name))) ids->add_ids(id);
    compress.set_slot_dtype(v1::FLOAT32);
    absl::StatusOr<v1::CompressResponse> compressed = client.Compress(compress);
    ASSERT_OK(compressed) << encoder.Log();
    ASSERT_EQ(compressed->spans_size(), 1);
    const v1::MemorySlots& slots = compressed->spans(0).slots();
    EXPECT_EQ(slots.encoder_id(), Tiny()->info.accepted_encoder_id());
    v1::GenerateRequest request;
    *request.add_context()->mutable_slots() = slots;
    request.set_template_name("ae");
    request.set_max_new_tokens(12);
    absl::StatusOr<v1::GenerateResponse> response = Tiny()->client->Generate(request);
    ASSERT_OK(response);
    EXPECT_EQ(Ids(response->token_ids()), ToIds(IcaeFixture(expected))) << ids_name;
    EXPECT_EQ(response->usage().uncompressed_context_tokens(), IcaeFixture(ids_name).numel());
  }
  // icae ask: both calls in one command.
  const std::string doc1 = scratch_->Join("doc1.txt"), doc2 = scratch_->Join("doc2.txt");
  std::ofstream(doc1) << "Paris is the capital of France. The quick brown fox jumps.";
  std::ofstream(doc2) << "Memory slots compress a long context into a few dense vectors.";
  const std::string out = scratch_->Join("ask.out"), err = scratch_->Join("ask.err");
  ASSERT_EQ(RunCommand(absl::StrCat(kCliBin, " ask --encoder ", encoder.address(), " --decoder ",
                                    Tiny()->process.address(), " --context-file ", doc1, " ", doc2,
                                    " --question 'What is the capital?' --max-new-tokens 10 "
                                    "--print-ids"),
                       out, err),
            0)
      << ReadFile(err);
  const std::string answer = ReadFile(out);
  EXPECT_EQ(std::count(answer.begin(), answer.end(), ','), 9) << answer;
  const std::string report = ReadFile(err);
  long long tokens = 0, slots = 0;
  ASSERT_EQ(std::sscanf(report.c_str(), "compression: %lld tokens in 2 file(s) -> %lld slots",
                        &tokens, &slots),
            2)
      << report;
  EXPECT_EQ(slots % 4, 0);  // mem_size slots per segment, at least one segment per file
  EXPECT_GE(slots, 8);
  EXPECT_THAT(report, HasSubstr("slots on the wire"));
  EXPECT_THAT(report, HasSubstr("times: compress"));
  EXPECT_THAT(report,
              HasSubstr(absl::StrCat("finish_reason=length generated=10 slot_tokens=", slots)));
  EXPECT_THAT(report, HasSubstr(absl::StrCat("uncompressed_context_tokens=", tokens)));
}

}  // namespace
}  // namespace icae::decoder
