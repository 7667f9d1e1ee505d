// The shared slot store end to end: a real redis-server on loopback, two icae-encoder replicas
// and an icae-decoder, all with --slot_store. A span compressed on one encoder is a store hit on
// the other; handles round-trip through the decoder; an expired handle is NOT_FOUND naming its
// key; INT8 slots decode; killing Redis mid-traffic fails no call.
#include <atomic>
#include <fstream>
#include <thread>

#include "common/client/encoder_router.h"
#include "common/client/handle_retry.h"
#include "common/store/redis_client.h"
#include "tests/decoder_service/server_fixture.h"
#include "tests/util/redis_server.h"

namespace icae::decoder {
namespace {

using ::icae::testing::RedisServer;

struct Encoder {
  ServerProcess process;
  std::unique_ptr<EncoderClient> client;
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return ProcessMetric(process, name, labels);
  }
};

class SlotStoreTest : public DecoderServerTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
    ASSERT_OK(redis);
    redis_ = *std::move(redis);
  }

  std::unique_ptr<Encoder> StartEncoder(const std::vector<std::string>& extra,
                                        const std::string& adapter = testing::TinyAdapter()) {
    auto encoder = std::make_unique<Encoder>();
    std::vector<std::string> args = {"--model",          TinyModelDir(), "--adapter",
                                     adapter,            "--listen",     "127.0.0.1:0",
                                     "--metrics_listen", "127.0.0.1:0",  "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_OK(encoder->process.Start(kEncoderBin, args,
                                     scratch_->Join(absl::StrCat("enc", ++encoders_, ".log"))));
    ClientOptions options;
    options.addresses = {encoder->process.address()};
    options.max_attempts = 1;
    auto connection = Connection::Create(options);
    EXPECT_OK(connection);
    EXPECT_OK(WaitForServing(**connection, "icae.v1.Encoder", absl::Seconds(60)));
    encoder->client = std::make_unique<EncoderClient>(*connection);
    return encoder;
  }

  static v1::CompressRequest Request(const std::vector<std::vector<int>>& spans,
                                     v1::DataType dtype = v1::FLOAT32, bool handles = false) {
    v1::CompressRequest request;
    for (const std::vector<int>& ids : spans) {
      request.add_spans()->mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
    }
    request.set_slot_dtype(dtype);
    request.set_return_handles(handles);
    return request;
  }

  static v1::GenerateRequest AeRequest(v1::ContextPart part) {
    v1::GenerateRequest request;
    *request.add_context() = std::move(part);
    request.set_template_name("ae");
    request.set_max_new_tokens(12);
    return request;
  }

  std::unique_ptr<RedisServer> redis_;
  int encoders_ = 0;
};

TEST_F(SlotStoreTest, AStoreHitOnAnotherReplicaAndHandlesThroughTheDecoder) {
  std::unique_ptr<Encoder> a = StartEncoder({"--slot_store", redis_->url()});
  std::unique_ptr<Encoder> b = StartEncoder({"--slot_store", redis_->url()});
  const std::vector<int> ids = ToIds(IcaeFixture("context40_ids"));

  absl::StatusOr<v1::CompressResponse> first = a->client->Compress(Request({ids}));
  ASSERT_OK(first);
  EXPECT_FALSE(first->spans(0).usage().store_hit());
  // A writes in the background: B asks once the write has landed.
  for (int i = 0; i < 200 && a->Metric("icae_encoder_store_writes_total", {{"result", "ok"}}) < 1;
       ++i) {
    absl::SleepFor(absl::Milliseconds(25));
  }
  absl::StatusOr<v1::CompressResponse> second = b->client->Compress(Request({ids}));
  ASSERT_OK(second);
  ASSERT_TRUE(second->spans(0).usage().store_hit()) << b->process.Log();
  EXPECT_FALSE(second->spans(0).usage().cache_hit());
  EXPECT_EQ(second->usage().store_hits(), 1);
  EXPECT_TRUE(second->spans(0).slots().slots().data() == first->spans(0).slots().slots().data());
  EXPECT_GE(b->Metric("icae_encoder_store_lookups_total", {{"result", "hit"}}), 1);
  EXPECT_GE(a->Metric("icae_encoder_store_writes_total", {{"result", "ok"}}), 1);
  absl::StatusOr<v1::EncoderInfo> info = a->client->GetInfo();
  ASSERT_OK(info);
  EXPECT_TRUE(info->slot_store());
  EXPECT_EQ(info->slot_store_ttl_seconds(), 3600);

  // Handles: the response carries keys, not tensors; the decoder fetches and decodes them to the
  // golden ids, exactly as the inline slots do.
  std::unique_ptr<Server> decoder =
      StartDecoder(TinyModelDir(), testing::TinyAdapter(), {"--slot_store", redis_->url()},
                   scratch_->Join("store-decoder.log"));
  ASSERT_NE(decoder, nullptr);
  EXPECT_TRUE(decoder->info.slot_store());
  const std::vector<int> other = ToIds(IcaeFixture("context_ids"));
  absl::StatusOr<v1::CompressResponse> handled =
      b->client->Compress(Request({ids, other}, v1::FLOAT32, /*handles=*/true));
  ASSERT_OK(handled);
  for (const v1::CompressedSpan& span : handled->spans()) {
    ASSERT_TRUE(span.has_handle());
    EXPECT_FALSE(span.has_slots());
    EXPECT_EQ(span.handle().key().rfind("icae:slots:", 0), 0u);
    EXPECT_EQ(span.handle().encoder_id(), decoder->info.accepted_encoder_id());
  }
  EXPECT_EQ(handled->spans(0).handle().key(), handled->spans(0).handle().key());
  v1::ContextPart by_handle;
  *by_handle.mutable_handle() = handled->spans(1).handle();
  absl::StatusOr<v1::GenerateResponse> via_handle = decoder->client->Generate(AeRequest(by_handle));
  ASSERT_OK(via_handle) << decoder->process.Log();
  EXPECT_EQ(Ids(via_handle->token_ids()), ToIds(IcaeFixture("ae_greedy_ids")));
  EXPECT_EQ(via_handle->usage().uncompressed_context_tokens(), static_cast<int>(other.size()));
  EXPECT_GE(decoder->Metric("icae_decoder_store_lookups_total", {{"result", "hit"}}), 1);

  // A handle whose key is unknown: NOT_FOUND naming it. A handle that lies about its slots:
  // INVALID_ARGUMENT. A handle to a decoder without a store: FAILED_PRECONDITION.
  v1::ContextPart unknown = by_handle;
  unknown.mutable_handle()->set_key("icae:slots:feedface");
  EXPECT_THAT(decoder->client->Generate(AeRequest(unknown)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("icae:slots:feedface")));
  v1::ContextPart lying = by_handle;
  lying.mutable_handle()->set_num_slots(999);
  EXPECT_THAT(decoder->client->Generate(AeRequest(lying)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the handle says")));
  EXPECT_THAT(Tiny()->client->Generate(AeRequest(by_handle)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--slot_store")));
}

// KV slots go through the store like embedding ones: a hit on another replica gives the same
// bytes (int8 with its [layers, 2, kv_heads, slots] scales), and a handle decodes as the inline
// slots do.
TEST_F(SlotStoreTest, KvSlotsAreStoredAndReadByHandle) {
  std::unique_ptr<Encoder> a = StartEncoder({"--slot_store", redis_->url()}, KvAdapter());
  std::unique_ptr<Encoder> b = StartEncoder({"--slot_store", redis_->url()}, KvAdapter());
  const std::vector<int> ids = ToIds(IcaeFixture("context40_ids"));
  absl::StatusOr<v1::CompressResponse> first = a->client->Compress(Request({ids}, v1::INT8));
  ASSERT_OK(first);
  for (int i = 0; i < 200 && a->Metric("icae_encoder_store_writes_total", {{"result", "ok"}}) < 1;
       ++i) {
    absl::SleepFor(absl::Milliseconds(25));
  }
  absl::StatusOr<v1::CompressResponse> second = b->client->Compress(Request({ids}, v1::INT8));
  ASSERT_OK(second);
  ASSERT_TRUE(second->spans(0).usage().store_hit()) << b->process.Log();
  const v1::MemorySlots& stored = second->spans(0).slots();
  EXPECT_EQ(stored.kind(), v1::KV);
  EXPECT_EQ(stored.slots().data(), first->spans(0).slots().slots().data());
  EXPECT_EQ(stored.slots().scale().data(), first->spans(0).slots().slots().scale().data());
  EXPECT_EQ(stored.slots().shape_size(), 5);

  std::unique_ptr<Server> decoder = StartDecoder(
      TinyModelDir(), KvAdapter(), {"--slot_store", redis_->url()}, scratch_->Join("kv-store.log"));
  ASSERT_NE(decoder, nullptr);
  absl::StatusOr<v1::CompressResponse> handled =
      b->client->Compress(Request({ids}, v1::INT8, /*handles=*/true));
  ASSERT_OK(handled);
  ASSERT_TRUE(handled->spans(0).has_handle());
  EXPECT_EQ(handled->spans(0).handle().kind(), v1::KV);
  v1::ContextPart by_handle, inline_slots;
  *by_handle.mutable_handle() = handled->spans(0).handle();
  *inline_slots.mutable_slots() = stored;
  absl::StatusOr<v1::GenerateResponse> via_handle = decoder->client->Generate(AeRequest(by_handle));
  ASSERT_OK(via_handle) << decoder->process.Log();
  absl::StatusOr<v1::GenerateResponse> via_inline =
      decoder->client->Generate(AeRequest(inline_slots));
  ASSERT_OK(via_inline);
  EXPECT_EQ(Ids(via_handle->token_ids()), Ids(via_inline->token_ids()));
  EXPECT_EQ(via_handle->token_ids_size(), 12);
}

// What Redis holds is input too: garbage or another encoder's slots under a key are never used.
TEST_F(SlotStoreTest, CorruptOrForeignEntriesAreNotUsed) {
  std::unique_ptr<Encoder> a = StartEncoder({"--slot_store", redis_->url()});
  std::unique_ptr<Encoder> b = StartEncoder({"--slot_store", redis_->url()});
  std::unique_ptr<Server> decoder =
      StartDecoder(TinyModelDir(), testing::TinyAdapter(), {"--slot_store", redis_->url()},
                   scratch_->Join("corrupt-decoder.log"));
  ASSERT_NE(decoder, nullptr);
  const std::vector<int> ids = ToIds(IcaeFixture("context_ids"));
  absl::StatusOr<v1::CompressResponse> handled =
      a->client->Compress(Request({ids}, v1::FLOAT32, /*handles=*/true));
  ASSERT_OK(handled);
  ASSERT_TRUE(handled->spans(0).has_handle());
  const std::string key = handled->spans(0).handle().key();
  absl::StatusOr<v1::CompressResponse> inline_slots =
      a->client->Compress(Request({ids}, v1::FLOAT32));
  ASSERT_OK(inline_slots);
  RedisOptions options;
  options.port = redis_->port();
  RedisClient redis(options);

  // Not a MemorySlots message at all: the decoder refuses the handle; an encoder computes the
  // span (and its write-back repairs the entry).
  ASSERT_OK(redis.Set({{key, std::string("\xff\xff\xff garbage", 12)}}, absl::ZeroDuration()));
  v1::ContextPart part;
  *part.mutable_handle() = handled->spans(0).handle();
  EXPECT_THAT(decoder->client->Generate(AeRequest(part)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(key)));
  absl::StatusOr<v1::CompressResponse> computed = b->client->Compress(Request({ids}));
  ASSERT_OK(computed);
  EXPECT_FALSE(computed->spans(0).usage().store_hit());
  EXPECT_TRUE(computed->spans(0).slots().slots().data() ==
              inline_slots->spans(0).slots().slots().data());
  EXPECT_GE(b->Metric("icae_encoder_store_lookups_total", {{"result", "error"}}), 1);
  // B's write-back is in the background: it must land before the entry is replaced below, or it
  // would repair the entry the next checks need broken (seen on a loaded machine).
  for (int i = 0; i < 400 && b->Metric("icae_encoder_store_writes_total", {{"result", "ok"}}) < 1;
       ++i) {
    absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_GE(b->Metric("icae_encoder_store_writes_total", {{"result", "ok"}}), 1);

  // Well-formed slots that claim another encoder, and slots whose bytes do not fit their shape.
  v1::MemorySlots foreign = inline_slots->spans(0).slots();
  foreign.set_encoder_id(std::string(64, 'f'));
  ASSERT_OK(redis.Set({{key, foreign.SerializeAsString()}}, absl::ZeroDuration()));
  EXPECT_THAT(decoder->client->Generate(AeRequest(part)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the handle says")));
  std::unique_ptr<Encoder> c = StartEncoder({"--slot_store", redis_->url()});  // empty cache
  absl::StatusOr<v1::CompressResponse> fresh = c->client->Compress(Request({ids}));
  ASSERT_OK(fresh);
  EXPECT_FALSE(fresh->spans(0).usage().store_hit());
  EXPECT_TRUE(fresh->spans(0).slots().slots().data() ==
              inline_slots->spans(0).slots().slots().data());
  EXPECT_GE(c->Metric("icae_encoder_store_lookups_total", {{"result", "error"}}), 1);
  v1::MemorySlots truncated = inline_slots->spans(0).slots();
  truncated.mutable_slots()->mutable_data()->resize(100);
  ASSERT_OK(redis.Set({{key, truncated.SerializeAsString()}}, absl::ZeroDuration()));
  EXPECT_THAT(decoder->client->Generate(AeRequest(part)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor data holds 100 bytes")));
}

TEST_F(SlotStoreTest, HandlesExpireAndNeedAStore) {
  std::unique_ptr<Encoder> encoder =
      StartEncoder({"--slot_store", redis_->url(), "--slot_store_ttl", "1"});
  std::unique_ptr<Server> decoder =
      StartDecoder(TinyModelDir(), testing::TinyAdapter(), {"--slot_store", redis_->url()},
                   scratch_->Join("ttl-decoder.log"));
  ASSERT_NE(decoder, nullptr);
  absl::StatusOr<v1::CompressResponse> handled = encoder->client->Compress(
      Request({ToIds(IcaeFixture("context_ids"))}, v1::BFLOAT16, /*handles=*/true));
  ASSERT_OK(handled);
  ASSERT_TRUE(handled->spans(0).has_handle());
  EXPECT_EQ(handled->spans(0).handle().dtype(), v1::BFLOAT16);
  v1::ContextPart part;
  *part.mutable_handle() = handled->spans(0).handle();
  ASSERT_OK(decoder->client->Generate(AeRequest(part)));
  absl::SleepFor(absl::Milliseconds(2200));
  EXPECT_THAT(decoder->client->Generate(AeRequest(part)),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(handled->spans(0).handle().key()), HasSubstr("compress"))));

  // The client library recompresses an expired handle and retries.
  ClientOptions options;
  options.addresses = {encoder->process.address()};
  absl::StatusOr<EncoderRouter> router = EncoderRouter::Create(options, RoutingPolicy::kContentHash);
  ASSERT_OK(router);
  v1::Span source;
  const std::vector<int> source_ids = ToIds(IcaeFixture("context_ids"));
  source.mutable_token_ids()->mutable_ids()->Add(source_ids.begin(), source_ids.end());
  absl::StatusOr<v1::GenerateResponse> retried =
      GenerateWithHandles(*router, *decoder->client, AeRequest(part), {source});
  ASSERT_OK(retried);
  EXPECT_EQ(Ids(retried->token_ids()), ToIds(IcaeFixture("ae_greedy_ids")));
  // Evicted again, and no source to recompress from: the NOT_FOUND comes back.
  RedisOptions redis;
  redis.port = redis_->port();
  ASSERT_OK(RedisClient(redis).Delete({part.handle().key()}));
  EXPECT_THAT(GenerateWithHandles(*router, *decoder->client, AeRequest(part), {std::nullopt}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(part.handle().key())));

  // An encoder without a store cannot give handles.
  std::unique_ptr<Encoder> plain = StartEncoder({});
  EXPECT_THAT(plain->client->Compress(Request({{1, 2, 3}}, v1::FLOAT32, true)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--slot_store")));
}

TEST_F(SlotStoreTest, Int8SlotsAreAQuarterOfTheBytesAndDecode) {
  std::unique_ptr<Encoder> encoder = StartEncoder({});
  const std::vector<int> ids = ToIds(IcaeFixture("context_ids"));
  absl::StatusOr<v1::CompressResponse> f32 = encoder->client->Compress(Request({ids}));
  absl::StatusOr<v1::CompressResponse> i8 = encoder->client->Compress(Request({ids}, v1::INT8));
  ASSERT_OK(f32);
  ASSERT_OK(i8);
  const v1::Tensor& q = i8->spans(0).slots().slots();
  EXPECT_EQ(q.dtype(), v1::INT8);
  EXPECT_EQ(q.data().size() * 4, f32->spans(0).slots().slots().data().size());
  EXPECT_EQ(q.scale().data().size(), 4u * static_cast<size_t>(q.shape(0)));
  // Within half a step of the float32 slots, row by row.
  absl::StatusOr<at::Tensor> dequantized = DecodeTensor(q, 1 << 20);
  absl::StatusOr<at::Tensor> exact = DecodeTensor(f32->spans(0).slots().slots(), 1 << 20);
  ASSERT_OK(dequantized);
  ASSERT_OK(exact);
  const at::Tensor step = exact->abs().amax(1) / 127;
  EXPECT_TRUE((dequantized->sub(*exact).abs() <= step.unsqueeze(1) * 0.5001 + 1e-7).all().item<bool>());

  v1::ContextPart part;
  *part.mutable_slots() = i8->spans(0).slots();
  absl::StatusOr<v1::GenerateResponse> decoded = Tiny()->client->Generate(AeRequest(part));
  ASSERT_OK(decoded);
  absl::StatusOr<v1::GenerateResponse> reference =
      Tiny()->client->Generate(AeRequest([&] {
        v1::ContextPart p;
        *p.mutable_slots() = f32->spans(0).slots();
        return p;
      }()));
  ASSERT_OK(reference);
  EXPECT_EQ(Ids(reference->token_ids()), ToIds(IcaeFixture("ae_greedy_ids")));
  // The tiny golden model is random: report how much of its greedy output int8 keeps.
  const std::vector<int> a = Ids(decoded->token_ids()), b = Ids(reference->token_ids());
  size_t same = 0;
  while (same < a.size() && same < b.size() && a[same] == b[same]) ++same;
  std::cout << "int8 slots: first " << same << " of " << b.size()
            << " greedy tokens equal to float32's\n";
  EXPECT_GE(same, 1u);
}

TEST_F(SlotStoreTest, RedisKilledMidTrafficFailsNoCall) {
  std::unique_ptr<Encoder> encoder =
      StartEncoder({"--slot_store", redis_->url(), "--slot_store_timeout_ms", "100"});
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;
  std::thread traffic([&] {
    for (int n = 0; !stop.load(); ++n) {
      // Distinct spans (misses: lookups and writes), every third one asking for handles.
      absl::StatusOr<v1::CompressResponse> r = encoder->client->Compress(
          Request({{1 + n % 300, 2, 3, 4, 5, 6, 7, 8 + n / 300}}, v1::FLOAT32, n % 3 == 0));
      if (r.ok() && r->spans_size() == 1 &&
          (r->spans(0).has_handle() || r->spans(0).slots().slots().data().size() > 0)) {
        ++ok;
      } else {
        if (failed++ == 0) first_error = r.ok() ? "empty span" : r.status().ToString();
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(500));
  redis_->Kill();
  absl::SleepFor(absl::Milliseconds(1500));
  ASSERT_OK(redis_->Restart());
  absl::SleepFor(absl::Milliseconds(1500));
  stop = true;
  traffic.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(ok.load(), 20);
  EXPECT_GT(encoder->Metric("icae_encoder_store_lookups_total", {{"result", "error"}}), 0);
  // Back after the restart: writes succeed again.
  const double written = encoder->Metric("icae_encoder_store_writes_total", {{"result", "ok"}});
  absl::StatusOr<v1::CompressResponse> after =
      encoder->client->Compress(Request({{9, 9, 9, 9}}, v1::FLOAT32, true));
  ASSERT_OK(after);
  EXPECT_TRUE(after->spans(0).has_handle());
  EXPECT_GT(encoder->Metric("icae_encoder_store_writes_total", {{"result", "ok"}}), written);
}

TEST_F(SlotStoreTest, AskWithHandlesAndHashRoutingAnswersAsInline) {
  std::unique_ptr<Encoder> a = StartEncoder({"--slot_store", redis_->url()});
  std::unique_ptr<Encoder> b = StartEncoder({"--slot_store", redis_->url()});
  std::unique_ptr<Server> decoder =
      StartDecoder(TinyModelDir(), testing::TinyAdapter(), {"--slot_store", redis_->url()},
                   scratch_->Join("ask-decoder.log"));
  ASSERT_NE(decoder, nullptr);
  const std::string doc1 = scratch_->Join("h1.txt"), doc2 = scratch_->Join("h2.txt");
  std::ofstream(doc1) << "Paris is the capital of France. The quick brown fox jumps.";
  std::ofstream(doc2) << "Memory slots compress a long context into a few dense vectors.";
  const auto ask = [&](const std::string& extra, std::string* report) {
    const std::string out = scratch_->Join("ask.out"), err = scratch_->Join("ask.err");
    const int code = RunCommand(
        absl::StrCat(kCliBin, " ask --encoder ", a->process.address(), " ",
                     b->process.address(), " --decoder ", decoder->process.address(),
                     " --context-file ", doc1, " ", doc2,
                     " --question 'What is the capital?' --max-new-tokens 8 --print-ids ", extra),
        out, err);
    *report = ReadFile(err);
    EXPECT_EQ(code, 0) << *report;
    return ReadFile(out);
  };
  std::string inline_report, handle_report;
  const std::string inline_answer = ask("", &inline_report);
  const std::string handle_answer = ask("--handles --routing hash", &handle_report);
  EXPECT_EQ(handle_answer, inline_answer);
  EXPECT_THAT(handle_report, HasSubstr("2 as slot-store handles"));
  EXPECT_THAT(inline_report, ::testing::Not(HasSubstr("slot-store handles")));
  const std::string out = scratch_->Join("bad.out"), err = scratch_->Join("bad.err");
  EXPECT_NE(RunCommand(absl::StrCat(kCliBin, " ask --encoder ", a->process.address(),
                                    " --decoder ", decoder->process.address(), " --context-file ",
                                    doc1, " --question q --routing random"),
                       out, err),
            0);
  EXPECT_THAT(ReadFile(err), HasSubstr("hash or round_robin"));
}

TEST_F(SlotStoreTest, HashRoutingSendsRepeatsToOneReplicaAndFallsBack) {
  std::vector<std::unique_ptr<Encoder>> encoders;
  ClientOptions options;
  for (int i = 0; i < 3; ++i) {
    encoders.push_back(StartEncoder({}));
    options.addresses.push_back(encoders.back()->process.address());
  }
  options.max_attempts = 1;
  absl::StatusOr<EncoderRouter> hashed = EncoderRouter::Create(options, RoutingPolicy::kContentHash);
  ASSERT_OK(hashed);
  EXPECT_EQ(hashed->replicas(), 3u);
  // kDocs documents, each asked 3 times, 2 per request: with hash routing every repeat is a hit.
  // The ranking hashes the replicas' addresses (ports differ per run), so the documents fall on
  // the replicas differently each run: 36 of them leave a replica without any with probability
  // 3 (2/3)^36 ~ 1e-6 (12 did ~2%).
  constexpr int kDocs = 36;
  std::vector<std::vector<int>> docs;
  for (int d = 0; d < kDocs; ++d) docs.push_back({5 + d, 6, 7, 8, 9 + d, 10, 11});
  int hits = 0, spans = 0;
  for (int round = 0; round < 3; ++round) {
    for (int d = 0; d < kDocs; d += 2) {
      absl::StatusOr<v1::CompressResponse> r = hashed->Compress(Request({docs[d], docs[d + 1]}));
      ASSERT_OK(r);
      ASSERT_EQ(r->spans_size(), 2);
      hits += r->usage().cache_hits();
      spans += r->spans_size();
      // Order is kept across replicas.
      EXPECT_EQ(r->spans(0).usage().tokens(), 7);
    }
  }
  EXPECT_EQ(spans, 3 * kDocs);
  EXPECT_EQ(hits, 2 * kDocs);
  // Every replica took a share (kDocs keys over 3 replicas), and no document was computed twice.
  double computed = 0;
  for (auto& e : encoders) {
    const double misses = e->Metric("icae_encoder_cache_misses_total");
    EXPECT_GT(misses, 0);
    computed += misses;
  }
  EXPECT_EQ(computed, kDocs);

  // A replica goes away: its spans fall back to their next replica; nothing fails.
  encoders[0]->process.Signal(SIGKILL);
  ASSERT_OK(encoders[0]->process.Wait(absl::Seconds(10)).status());
  for (int d = 0; d < kDocs; d += 2) {
    ASSERT_OK(hashed->Compress(Request({docs[d], docs[d + 1]})));
  }
  // The ranking is the content's: the same key ranks the same everywhere, and dropping a replica
  // only moves the keys it held.
  const std::vector<std::string> three = {"a:1", "b:2", "c:3"}, two = {"a:1", "c:3"};
  int moved = 0;
  for (int k = 0; k < 300; ++k) {
    const std::string key = SpanContentKey(Request({{k}}).spans(0));
    const std::vector<size_t> r3 = RendezvousRanking(key, three), r2 = RendezvousRanking(key, two);
    if (three[r3[0]] != "b:2") {
      EXPECT_EQ(two[r2[0]], three[r3[0]]);
    } else {
      ++moved;
    }
  }
  EXPECT_GT(moved, 60);
  EXPECT_LT(moved, 140);
}

}  // namespace
}  // namespace icae::decoder
