// KV slots (500xCompressor) through both real services on loopback: an encoder and a decoder
// loaded with a "slot_kind": "kv" adapter on tiny-llama. Compress gives KV tensors, Generate reads
// them (alone, between text parts, over int8 and bfloat16 wires, with slot-prefix reuse) to
// exactly the ids of the offline library, and every bad KV tensor is refused naming the field.
#include "common/model/compressor.h"
#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

class KvSlotsServerTest : public DecoderServerTest {
 protected:
  static void TearDownTestSuite() {
    delete kv_decoder_;
    delete kv_encoder_;
    kv_decoder_ = nullptr;
    kv_encoder_ = nullptr;
    DecoderServerTest::TearDownTestSuite();
  }

  static Server* KvDecoder() {
    if (kv_decoder_ == nullptr) {
      kv_decoder_ =
          StartDecoder(TinyModelDir(), KvAdapter(), {}, scratch_->Join("kv-decoder.log")).release();
    }
    return kv_decoder_;
  }
  static EncoderClient& KvEncoder() {
    if (kv_encoder_ == nullptr) {
      kv_encoder_ =
          StartEncoder(TinyModelDir(), KvAdapter(), scratch_->Join("kv-encoder.log")).release();
    }
    return *kv_encoder_->client;
  }

  static std::vector<int> Span(int n) {
    std::vector<int> ids(n);
    for (int i = 0; i < n; ++i) ids[i] = 3 + (i * 37) % 300;
    return ids;
  }
  static v1::MemorySlots Compress(const std::vector<int>& ids, v1::DataType dtype) {
    v1::CompressRequest request;
    v1::TokenIds* span = request.add_spans()->mutable_token_ids();
    for (int id : ids) span->add_ids(id);
    request.set_slot_dtype(dtype);
    absl::StatusOr<v1::CompressResponse> response = KvEncoder().Compress(request);
    EXPECT_OK(response);
    return response.ok() ? response->spans(0).slots() : v1::MemorySlots();
  }
  // The offline library's greedy ids for `context` (KV slots as computed in-process).
  static std::vector<int> OfflineIds(PromptTemplate tmpl, const std::vector<ContextPart>& context,
                                     const std::vector<int>& prompt, int max_new) {
    auto model = SlotDecoder::Load(TinyModelDir(), KvAdapter(), Runtime());
    EXPECT_OK(model);
    if (!model.ok()) return {};
    GenerationParams params;
    params.max_new_tokens = max_new;
    auto out = decoder::GenerateOffline(**model, {decoder::LocalInput{tmpl, context, prompt, params}});
    EXPECT_OK(out);
    return out.ok() ? (*out)[0].ids : std::vector<int>();
  }
  static at::Tensor OfflineSlots(const std::vector<int>& ids) {
    auto compressor = Compressor::Load(TinyModelDir(), KvAdapter(), Runtime());
    EXPECT_OK(compressor);
    auto slots = (*compressor)->CompressSpan(ids);
    EXPECT_OK(slots);
    return *slots;
  }
  static v1::ContextPart KvPart(const at::Tensor& kv, const std::string& encoder_id) {
    v1::ContextPart part;
    v1::MemorySlots* m = part.mutable_slots();
    EXPECT_OK(EncodeTensor(kv, v1::FLOAT32, m->mutable_slots()));
    m->set_kind(v1::KV);
    m->set_encoder_id(encoder_id);
    m->set_mem_size(4);
    return part;
  }

  inline static Server* kv_decoder_ = nullptr;
  inline static EncoderProcess* kv_encoder_ = nullptr;
};

TEST_F(KvSlotsServerTest, KvSlotsRoundTripThroughBothServicesToTheOfflineIds) {
  auto info = KvEncoder().GetInfo();
  ASSERT_OK(info);
  EXPECT_EQ(info->slot_kind(), v1::KV);
  EXPECT_EQ(KvDecoder()->info.slot_kind(), v1::KV);
  EXPECT_EQ(Tiny()->info.slot_kind(), v1::EMBEDDING);
  EXPECT_EQ(info->encoder_id(), KvDecoder()->info.accepted_encoder_id());

  const std::vector<int> span = Span(40);  // 3 segments: 16 + 16 + 8 tokens
  const v1::MemorySlots slots = Compress(span, v1::FLOAT32);
  EXPECT_EQ(slots.kind(), v1::KV);
  EXPECT_EQ(slots.num_segments(), 3);
  EXPECT_EQ(std::vector<int64_t>(slots.slots().shape().begin(), slots.slots().shape().end()),
            (std::vector<int64_t>{2, 2, 2, 12, 16}));  // [layers, 2, kv_heads, slots, head_dim]
  const at::Tensor offline = OfflineSlots(span);
  auto wire = DecodeTensor(slots.slots(), 1 << 20);
  ASSERT_OK(wire);
  EXPECT_LT((*wire - offline).abs().max().item<float>(), 1e-5);

  ContextPart kv;
  kv.kind = SlotKind::kKv;
  kv.slots = offline;
  // Autoencoding: [KV slots][AE].
  v1::GenerateRequest ae;
  *ae.add_context()->mutable_slots() = slots;
  ae.set_template_name("ae");
  ae.set_max_new_tokens(12);
  absl::StatusOr<v1::GenerateResponse> response = KvDecoder()->client->Generate(ae);
  ASSERT_OK(response) << KvDecoder()->process.Log();
  EXPECT_EQ(Ids(response->token_ids()), OfflineIds(PromptTemplate::kAe, {kv}, {}, 12));
  EXPECT_EQ(response->usage().slot_tokens(), 12);
  EXPECT_EQ(response->usage().uncompressed_context_tokens(), 40);

  // Between text parts, streamed: [ids][KV slots][ids] prompt.
  v1::GenerateRequest mixed;
  v1::TokenIds* before = mixed.add_context()->mutable_token_ids();
  for (int id : {7, 8, 9}) before->add_ids(id);
  *mixed.add_context()->mutable_slots() = slots;
  v1::TokenIds* after = mixed.add_context()->mutable_token_ids();
  after->add_ids(20);
  after->add_ids(21);
  mixed.mutable_prompt_ids()->add_ids(30);
  mixed.mutable_prompt_ids()->add_ids(31);
  mixed.set_template_name("raw");
  mixed.set_max_new_tokens(10);
  ContextPart lead, tail;
  lead.token_ids = {7, 8, 9};
  tail.token_ids = {20, 21};
  StreamResult stream = Stream(*KvDecoder()->client, mixed);
  ASSERT_OK(stream.status);
  EXPECT_EQ(stream.ids(), OfflineIds(PromptTemplate::kRaw, {lead, kv, tail}, {30, 31}, 10));

  // A second question over the same KV slots reuses their KV (and answers as without reuse).
  v1::GenerateRequest first = mixed;
  first.mutable_prompt_ids()->set_ids(1, 33);
  absl::StatusOr<v1::GenerateResponse> warm = KvDecoder()->client->Generate(first);
  ASSERT_OK(warm);
  absl::StatusOr<v1::GenerateResponse> second = KvDecoder()->client->Generate(mixed);
  ASSERT_OK(second);
  EXPECT_EQ(second->usage().cached_positions(), 3 + 12 + 2);
  EXPECT_EQ(Ids(second->token_ids()), stream.ids());

  // Smaller wires are accepted too (int8: per-row scales over [layers, 2, kv_heads, slots]).
  for (v1::DataType dtype : {v1::BFLOAT16, v1::INT8}) {
    const v1::MemorySlots small = Compress(span, dtype);
    ASSERT_EQ(small.slots().dtype(), dtype);
    if (dtype == v1::INT8) {
      EXPECT_EQ(std::vector<int64_t>(small.slots().scale().shape().begin(),
                                     small.slots().scale().shape().end()),
                (std::vector<int64_t>{2, 2, 2, 12}));
    }
    auto decoded = DecodeTensor(small.slots(), 1 << 20);
    ASSERT_OK(decoded);
    EXPECT_LT((*decoded - offline).abs().max().item<float>(), 0.05) << v1::DataType_Name(dtype);
    v1::GenerateRequest request = ae;
    *request.mutable_context(0)->mutable_slots() = small;
    absl::StatusOr<v1::GenerateResponse> r = KvDecoder()->client->Generate(request);
    ASSERT_OK(r) << v1::DataType_Name(dtype);
    EXPECT_EQ(r->token_ids_size(), 12);
  }
}

// A decoder that also accepts the KV adapter reads both kinds in one request, each checked
// against its own encoder.
TEST_F(KvSlotsServerTest, OneRequestMixesEmbeddingAndKvSlots) {
  std::unique_ptr<Server> both =
      StartDecoder(TinyModelDir(), testing::TinyAdapter(), {"--also_accept", KvAdapter()},
                   scratch_->Join("both.log"));
  ASSERT_NE(both, nullptr);
  ASSERT_EQ(both->info.accepted_encoders_size(), 2);
  EXPECT_EQ(both->info.accepted_encoders(0).encoder_id(), Tiny()->info.accepted_encoder_id());
  EXPECT_EQ(both->info.accepted_encoders(0).slot_kind(), v1::EMBEDDING);
  EXPECT_EQ(both->info.accepted_encoders(1).encoder_id(),
            KvDecoder()->info.accepted_encoder_id());
  EXPECT_EQ(both->info.accepted_encoders(1).slot_kind(), v1::KV);
  EXPECT_EQ(both->info.accepted_encoders(1).mem_size(), 4);

  const std::vector<int> span = Span(20);
  const v1::MemorySlots kv_slots = Compress(span, v1::FLOAT32);
  v1::GenerateRequest request;
  *request.add_context() = SlotsPart(IcaeFixture("slots"), Tiny()->info.accepted_encoder_id());
  v1::TokenIds* ids = request.add_context()->mutable_token_ids();
  for (int id : {20, 21, 22}) ids->add_ids(id);
  *request.add_context()->mutable_slots() = kv_slots;
  request.mutable_prompt_ids()->add_ids(30);
  request.set_template_name("icae-v1");
  request.set_max_new_tokens(10);
  absl::StatusOr<v1::GenerateResponse> response = both->client->Generate(request);
  ASSERT_OK(response) << both->process.Log();
  EXPECT_EQ(response->usage().slot_tokens(), 4 + 8);

  auto model = SlotDecoder::Load(TinyModelDir(), testing::TinyAdapter(), Runtime(), {KvAdapter()});
  ASSERT_OK(model);
  std::vector<ContextPart> context(3);
  context[0].slots = IcaeFixture("slots");
  context[1].token_ids = {20, 21, 22};
  context[2].slots = OfflineSlots(span);
  context[2].kind = SlotKind::kKv;
  GenerationParams params;
  params.max_new_tokens = 10;
  auto expected = decoder::GenerateOffline(
      **model, {decoder::LocalInput{PromptTemplate::kIcaeV1, context, {30}, params}});
  ASSERT_OK(expected);
  EXPECT_EQ(Ids(response->token_ids()), (*expected)[0].ids);
  // Each part is checked against its own encoder: the KV slots claiming the embedding one's id.
  request.mutable_context(2)->mutable_slots()->set_encoder_id(Tiny()->info.accepted_encoder_id());
  EXPECT_THAT(both->client->Generate(request).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("context[2].slots: kv slots, but encoder_id")));
}

// icae compress / generate work unchanged for KV slots: a slots file keeps the kind, offline and
// through the services, and every path decodes to the same ids.
TEST_F(KvSlotsServerTest, CliCompressAndGenerateCarryTheKind) {
  const std::string ids = "5,17,42,99,3,250,8,61,77,300,12,13,14,15,16,40,41,42,43,44";
  const std::string local = scratch_->Join("kv-local.safetensors");
  const std::string remote = scratch_->Join("kv-remote.safetensors");
  const std::string out = scratch_->Join("kv-cli.out"), err = scratch_->Join("kv-cli.err");
  ASSERT_EQ(RunCommand(absl::StrCat(kCliBin, " compress --model ", TinyModelDir(), " --adapter ",
                                    KvAdapter(), " --token-ids ", ids, " --out ", local),
                       out, err),
            0)
      << ReadFile(err);
  EXPECT_THAT(ReadFile(err), HasSubstr("into 8 slots (2 segments)"));
  KvEncoder();  // Started.
  ASSERT_EQ(RunCommand(absl::StrCat(kCliBin, " compress --encoder ",
                                    kv_encoder_->process.address(), " --token-ids ", ids,
                                    " --slot_dtype float32 --out ", remote),
                       out, err),
            0)
      << ReadFile(err);
  for (const std::string& path : {local, remote}) {
    auto file = ReadSlotsFile(path);
    ASSERT_OK(file);
    EXPECT_EQ(file->kind, SlotKind::kKv);
    EXPECT_EQ(file->shape, (std::vector<int64_t>{2, 2, 2, 8, 16}));
    EXPECT_EQ(file->num_slots(), 8);
  }
  std::string first;
  for (const std::string& where :
       {absl::StrCat(" --decoder ", KvDecoder()->process.address()),
        absl::StrCat(" --model ", TinyModelDir(), " --adapter ", KvAdapter())}) {
    for (const std::string& path : {local, remote}) {
      SCOPED_TRACE(where + " " + path);
      ASSERT_EQ(RunCommand(absl::StrCat(kCliBin, " generate", where, " --slots ", path,
                                        " --template ae --max-new-tokens 10 --print-ids"),
                           out, err),
                0)
          << ReadFile(err);
      if (first.empty()) first = ReadFile(out);
      EXPECT_EQ(ReadFile(out), first);
    }
  }
  EXPECT_EQ(std::count(first.begin(), first.end(), ','), 9) << first;
}

TEST_F(KvSlotsServerTest, BadKvSlotsAreRefusedNamingTheField) {
  const std::string& id = KvDecoder()->info.accepted_encoder_id();
  const at::Tensor good = at::randn({2, 2, 2, 4, 16});
  auto refused = [&](Server* server, const v1::ContextPart& part, bool with_prompt = true) {
    v1::GenerateRequest request;
    *request.add_context() = part;
    request.set_template_name("raw");
    if (with_prompt) request.mutable_prompt_ids()->add_ids(30);
    request.set_max_new_tokens(4);
    return server->client->Generate(request).status();
  };
  using absl::StatusCode;
  EXPECT_THAT(refused(KvDecoder(), KvPart(at::randn({3, 2, 2, 4, 16}), id)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("context[0].slots: KV slots [layers, 2, kv_heads, n, head_dim] "
                                 "must be a float tensor [2, 2, 2, n > 0, 16]")));
  EXPECT_THAT(refused(KvDecoder(), KvPart(at::randn({2, 2, 2, 4, 8}), id)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("context[0].slots")));
  at::Tensor nan = good.clone();
  nan[1][0][1][2][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(refused(KvDecoder(), KvPart(nan, id)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("context[0].slots: contains NaN")));
  v1::ContextPart short_bytes = KvPart(good, id);
  short_bytes.mutable_slots()->mutable_slots()->mutable_data()->resize(good.numel() * 4 - 4);
  EXPECT_THAT(refused(KvDecoder(), short_bytes),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("context[0].slots")));
  // One kind where the decoder reads the other, each way.
  EXPECT_THAT(refused(Tiny(), KvPart(good, Tiny()->info.accepted_encoder_id())),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("context[0].slots: kv slots, but encoder_id '",
                                              Tiny()->info.accepted_encoder_id(),
                                              "' makes embedding slots"))));
  EXPECT_THAT(refused(KvDecoder(), SlotsPart(at::randn({4, 64}), id)),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("context[0].slots: embedding slots, but encoder_id '",
                                              id, "' makes kv slots"))));
  EXPECT_THAT(refused(KvDecoder(), KvPart(good, std::string(64, 'c'))),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("encoder_id")));
  EXPECT_THAT(refused(KvDecoder(), KvPart(good, id), /*with_prompt=*/false),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("context[0]: KV slots cannot end the prompt")));
  v1::ContextPart meta = KvPart(good, id);
  meta.mutable_slots()->set_num_segments(2);
  EXPECT_THAT(refused(KvDecoder(), meta),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("num_segments: 2 x mem_size 4")));
  // Nothing was lost: the decoder still serves.
  EXPECT_OK(refused(KvDecoder(), KvPart(good, id)));
}

}  // namespace
}  // namespace icae::decoder
