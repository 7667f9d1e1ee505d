// The real icae-decoder on loopback with the golden tiny model: GetInfo, health and metrics, golden
// ids from slots (unary and streaming), mixed slots + text against the offline library, concurrent
// requests, every refusal code, the icae CLI, and slots from a real icae-encoder.
#include <algorithm>

#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

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
  // The pool: 65536 positions in blocks of 16, none held yet.
  EXPECT_EQ(MetricValue(*metrics, "icae_decoder_kv_blocks", {{"state", "free"}}), 4096);
  EXPECT_EQ(MetricValue(*metrics, "icae_decoder_kv_blocks", {{"state", "used"}}), 0);
  for (const char* name :
       {"icae_decoder_time_to_first_token_seconds_count",
        "icae_decoder_inter_token_latency_seconds_count",
        "icae_decoder_e2e_request_latency_seconds_count",
        "icae_decoder_request_queue_time_seconds_count", "icae_decoder_num_requests_running",
        "icae_decoder_num_requests_waiting", "icae_decoder_kv_cache_tokens_used",
        "icae_decoder_prompt_tokens_total", "icae_decoder_slot_tokens_total",
        "icae_decoder_uncompressed_context_tokens_total", "icae_decoder_generation_tokens_total",
        "icae_decoder_batch_size_count", "icae_decoder_num_preemptions_total"}) {
    EXPECT_GE(MetricValue(*metrics, name), 0) << name;
  }
  EXPECT_GE(
      MetricValue(*metrics, "icae_decoder_requests_finished_total", {{"finish_reason", "eos"}}), 0);
  for (const char* scheduled : {"alone", "carried"}) {
    EXPECT_GE(MetricValue(*metrics, "icae_decoder_prefill_positions_total",
                          {{"scheduled", scheduled}}),
              0)
        << scheduled;
  }
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
  auto expected = decoder::GenerateOffline(
      **model, {decoder::LocalInput{PromptTemplate::kIcaeV2Instruct, context, *prompt_ids, params}});
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

// Slot-prefix reuse through gRPC: a second question over the same slots reuses their KV
// (usage.cached_positions, the prefix-cache metrics) and gets the ids of a request that opts out.
TEST_F(DecoderServerTest, SecondQuestionOverTheSameSlotsReusesTheirKv) {
  const at::Tensor slots = IcaeFixture("slots40") * 0.75;  // Slots no other test sends.
  auto question = [&](int id) {
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(slots, Tiny()->info.accepted_encoder_id());
    request.set_template_name("icae-v1");
    request.mutable_prompt_ids()->add_ids(id);
    request.set_max_new_tokens(8);
    request.set_ignore_eos(true);
    return request;
  };
  const std::map<std::string, std::string> hit = {{"result", "hit"}}, miss = {{"result", "miss"}};
  const double hits = Tiny()->Metric("icae_decoder_prefix_cache_lookups_total", hit);
  const double misses = Tiny()->Metric("icae_decoder_prefix_cache_lookups_total", miss);
  const double reused = Tiny()->Metric("icae_decoder_prefix_cache_reused_positions_total");
  absl::StatusOr<v1::GenerateResponse> first = Tiny()->client->Generate(question(5));
  ASSERT_OK(first);
  EXPECT_EQ(first->usage().cached_positions(), 0);
  absl::StatusOr<v1::GenerateResponse> second = Tiny()->client->Generate(question(9));
  ASSERT_OK(second);
  const int prefix = static_cast<int>(slots.size(0)) + 1;  // "[slots][FT]"
  EXPECT_EQ(second->usage().cached_positions(), prefix);
  v1::GenerateRequest opted_out = question(9);
  opted_out.set_skip_prefix_cache(true);
  absl::StatusOr<v1::GenerateResponse> third = Tiny()->client->Generate(opted_out);
  ASSERT_OK(third);
  EXPECT_EQ(third->usage().cached_positions(), 0);
  EXPECT_EQ(Ids(third->token_ids()), Ids(second->token_ids()));
  EXPECT_GT(third->usage().kv_cache_bytes(), second->usage().kv_cache_bytes());
  EXPECT_EQ(Tiny()->Metric("icae_decoder_prefix_cache_lookups_total", hit), hits + 1);
  EXPECT_EQ(Tiny()->Metric("icae_decoder_prefix_cache_lookups_total", miss), misses + 1);
  EXPECT_EQ(Tiny()->Metric("icae_decoder_prefix_cache_reused_positions_total"), reused + prefix);
  EXPECT_GT(Tiny()->Metric("icae_decoder_prefix_cache_bytes"), 0);
  EXPECT_GE(Tiny()->Metric("icae_decoder_prefix_cache_entries"), 1);
  EXPECT_GE(Tiny()->Metric("icae_decoder_prefix_cache_evictions_total"), 0);
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
  // Nothing to generate from: no context part and no prompt (once 511 tokens from [AE] alone).
  EXPECT_THAT(both(v1::GenerateRequest()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no context and no prompt")));
  {
    at::Tensor nan = IcaeFixture("slots").clone();
    nan[1][3] = std::nan("");
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(nan, id);
    EXPECT_THAT(both(request), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
  }
  {
    v1::GenerateRequest request = AeRequest("slots", 8);
    // An embedding tensor labelled KV: this decoder reads embedding slots (kv_slots_server_test
    // sends real KV tensors to a KV decoder).
    request.mutable_context(0)->mutable_slots()->set_kind(v1::KV);
    EXPECT_THAT(both(request),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr(absl::StrCat("kv slots, but encoder_id '", id,
                                                "' makes embedding slots"))));
    request.mutable_context(0)->mutable_slots()->set_kind(static_cast<v1::SlotKind>(7));
    EXPECT_THAT(both(request), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("context[0].slots.kind 7 is not a slot kind")));
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

// D3: a request protobuf refuses (here a prompt that is not UTF-8, which the C++ client still
// serializes) is INVALID_ARGUMENT naming the message, on both methods, and counted.
TEST_F(DecoderServerTest, UnparsableRequestsAreInvalidArgumentAndCounted) {
  auto count = [&](const char* method) {  // A series not yet exported (-1) counts 0.
    return std::max(0.0, Tiny()->Metric("icae_decoder_requests_total",
                                        {{"code", "INVALID_ARGUMENT"}, {"method", method}}));
  };
  const double unary_before = count("Generate"), stream_before = count("GenerateStream");
  v1::GenerateRequest request = AeRequest("slots", 8);
  request.set_prompt(std::string("caf\xc3", 4));
  const auto refused = StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("not a valid icae.v1.GenerateRequest"));
  EXPECT_THAT(Tiny()->client->Generate(request).status(), refused);
  EXPECT_THAT(Stream(*Tiny()->client, request).status, refused);
  EXPECT_EQ(count("Generate") - unary_before, 1);
  EXPECT_EQ(count("GenerateStream") - stream_before, 1);
  // The server still answers well-formed requests.
  EXPECT_OK(Tiny()->client->Generate(AeRequest("slots", 4)).status());
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
  // make builds icae-encoder before ctest runs (a target dependency): its absence is a failure.
  ASSERT_EQ(access(kEncoderBin.c_str(), X_OK), 0) << kEncoderBin << " is not built";
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
