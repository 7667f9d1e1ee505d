// icae-encoder over gRPC: golden slots, GetInfo, mixed batches, the cache, wire dtypes, bad input.
#include <gmock/gmock.h>

#include "absl/strings/str_cat.h"
#include "tests/encoder_service/encoder_server_fixture.h"

namespace icae::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::vector<float> SlotFloats(const v1::CompressedSpan& span) {
  const v1::Tensor& t = span.slots().slots();
  switch (t.dtype()) {
    case v1::FLOAT32:
      return FloatsFromF32(t.data());
    case v1::BFLOAT16:
      return FloatsFromBF16(t.data());
    case v1::FLOAT16:
      return FloatsFromF16(t.data());
    default:
      return {};
  }
}

TEST_F(EncoderServerTest, GoldenSlotsForSingleAndMultiSegmentSpansAndInfo) {
  StartServer();
  auto golden = ReadGolden();
  ASSERT_OK(golden);
  EncoderClient client = Client();
  auto info = client.GetInfo();
  ASSERT_OK(info);
  EXPECT_EQ(info->base_model(), "tiny-llama");
  EXPECT_EQ(info->architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info->adapter(), "adapter.safetensors");
  EXPECT_EQ(info->encoder_id().size(), 64u);
  EXPECT_EQ(info->hidden_size(), 64);
  EXPECT_EQ(info->vocab_size(), 384);
  EXPECT_EQ(info->mem_size(), 4);
  EXPECT_EQ(info->compression_rate(), 4);
  EXPECT_EQ(info->max_input_tokens(), 5120);
  EXPECT_EQ(info->max_spans(), 64);
  EXPECT_EQ(info->compute_dtype(), v1::FLOAT32);
  EXPECT_THAT(info->slot_dtypes(),
              ::testing::ElementsAre(v1::FLOAT32, v1::BFLOAT16, v1::FLOAT16, v1::INT8));
  EXPECT_FALSE(info->slot_store());
  EXPECT_EQ(info->device(), "cpu");
  EXPECT_EQ(info->version(), "0.1.0");
  EXPECT_EQ(info->max_message_bytes(), 64 << 20);
  EXPECT_EQ(info->max_batch_segments(), 16);
  EXPECT_EQ(info->max_batch_tokens(), 8192);
  EXPECT_EQ(info->max_queue_segments(), 1024);
  EXPECT_EQ(info->cache_capacity_bytes(), 268435456);

  auto response = client.Compress(IdsRequest({golden->context_ids, golden->context40_ids}));
  ASSERT_OK(response);
  ASSERT_EQ(response->spans_size(), 2);
  const v1::CompressedSpan& one = response->spans(0);
  const v1::CompressedSpan& three = response->spans(1);
  EXPECT_EQ(one.id(), "span-0");
  EXPECT_EQ(one.slots().kind(), v1::EMBEDDING);
  EXPECT_EQ(one.slots().encoder_id(), info->encoder_id());
  EXPECT_EQ(one.slots().source_tokens(), 16);
  EXPECT_EQ(one.slots().num_segments(), 1);
  EXPECT_EQ(one.slots().mem_size(), 4);
  EXPECT_EQ(one.slots().slots().dtype(), v1::FLOAT32);
  EXPECT_THAT(one.slots().slots().shape(), ::testing::ElementsAre(4, 64));
  EXPECT_LE(MaxAbsDiff(SlotFloats(one), golden->slots), 1e-4);
  EXPECT_EQ(three.slots().num_segments(), 3);
  EXPECT_EQ(three.slots().source_tokens(), 40);
  EXPECT_THAT(three.slots().slots().shape(), ::testing::ElementsAre(12, 64));
  EXPECT_LE(MaxAbsDiff(SlotFloats(three), golden->slots40), 1e-4);
  EXPECT_EQ(three.usage().segments(), 3);
  EXPECT_EQ(three.usage().slots(), 12);
  EXPECT_EQ(response->usage().spans(), 2);
  EXPECT_EQ(response->usage().tokens(), 56);
  EXPECT_EQ(response->usage().segments(), 4);
  EXPECT_EQ(response->usage().slots(), 16);
  EXPECT_EQ(response->usage().cache_hits(), 0);
  EXPECT_GT(response->usage().compute_seconds(), 0);

  const std::string metrics = Metrics();
  EXPECT_EQ(
      MetricValue(metrics, "icae_encoder_requests_total", {{"method", "Compress"}, {"code", "OK"}}),
      1);
  EXPECT_EQ(
      MetricValue(metrics, "icae_encoder_requests_total", {{"method", "GetInfo"}, {"code", "OK"}}),
      1);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_spans_total"), 2);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_segments_total"), 4);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_tokens_total"), 56);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_slots_total"), 16);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_batch_segments_count"), 1);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_batch_tokens_sum"), 4 * (16 + 4));
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_queue_segments"), 0);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_inflight_requests"), 0);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_cache_capacity_bytes"), 268435456);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_queue_duration_seconds_count"), 4);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_compute_duration_seconds_count"), 1);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_info",
                        {{"base_model", "tiny-llama"},
                         {"adapter", "adapter.safetensors"},
                         {"encoder_id", info->encoder_id()},
                         {"version", "0.1.0"},
                         {"device", "cpu"},
                         {"dtype", "float32"}}),
            1);
}

TEST_F(EncoderServerTest, MixedBatchKeepsOrderAndIdsAndTextIsTokenizedWithBos) {
  StartServer({}, /*tokenizer=*/true);
  const std::string text = "the encoder compresses a retrieved document into memory slots";
  auto reference = SpmEncode(copy_.model_dir + "/tokenizer.model", text);
  ASSERT_OK(reference);
  std::vector<int> text_ids = {1};  // BOS, as the ICAE reference tokenizes contexts
  text_ids.insert(text_ids.end(), reference->begin(), reference->end());

  // Mixed: ids of several lengths (1..3 segments), a text span, a repeated span, ids given out of
  // any length order, caller ids that are not in order either.
  std::vector<std::vector<int>> id_spans = {RandomIds(40, 384, 1), RandomIds(3, 384, 2),
                                            RandomIds(17, 384, 3), RandomIds(40, 384, 1),
                                            RandomIds(64, 384, 4)};
  v1::CompressRequest request;
  request.set_bypass_cache(true);
  const std::vector<std::string> ids = {"z", "", "a-\xc3\xa9", "same", "text", "last"};
  for (size_t i = 0; i < ids.size(); ++i) {
    v1::Span* span = request.add_spans();
    span->set_id(ids[i]);
    if (ids[i] == "text") {
      span->set_text(text);
    } else {
      const auto& src = id_spans[i < 4 ? i : i - 1];
      span->mutable_token_ids()->mutable_ids()->Add(src.begin(), src.end());
    }
  }
  EncoderClient client = Client();
  auto mixed = client.Compress(request);
  ASSERT_OK(mixed);
  ASSERT_EQ(mixed->spans_size(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(mixed->spans(i).id(), ids[i]);

  // Each span alone gives the same slots as inside the mixed batch.
  for (int i = 0; i < 6; ++i) {
    v1::CompressRequest single;
    single.set_bypass_cache(true);
    auto* span = single.add_spans();
    const std::vector<int>& src = ids[i] == "text" ? text_ids : id_spans[i < 4 ? i : i - 1];
    span->mutable_token_ids()->mutable_ids()->Add(src.begin(), src.end());
    auto alone = client.Compress(single);
    ASSERT_OK(alone);
    const v1::CompressedSpan& got = mixed->spans(i);
    EXPECT_EQ(got.slots().source_tokens(), static_cast<int>(src.size())) << i;
    EXPECT_EQ(got.slots().num_segments(), (static_cast<int>(src.size()) + 15) / 16) << i;
    EXPECT_LE(MaxAbsDiff(SlotFloats(got), SlotFloats(alone->spans(0))), 1e-5) << "span " << i;
  }
  EXPECT_EQ(mixed->usage().spans(), 6);
  // The same span twice in one batch: the same slots up to the GEMM's rounding, which may depend
  // on a row's place in the batch (OpenBLAS's edge tiles on some CPUs give identical rows
  // different last bits).
  EXPECT_LE(MaxAbsDiff(SlotFloats(mixed->spans(0)), SlotFloats(mixed->spans(3))), 1e-5);
}

TEST_F(EncoderServerTest, CachedSecondCallIsBitIdenticalAndCountedAsHit) {
  StartServer();
  EncoderClient client = Client();
  const v1::CompressRequest request = IdsRequest({RandomIds(40, 384, 11), RandomIds(16, 384, 12)});
  auto first = client.Compress(request);
  ASSERT_OK(first);
  auto second = client.Compress(request);
  ASSERT_OK(second);
  ASSERT_EQ(second->spans_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(first->spans(i).usage().cache_hit());
    EXPECT_TRUE(second->spans(i).usage().cache_hit());
    EXPECT_EQ(first->spans(i).slots().SerializeAsString(),
              second->spans(i).slots().SerializeAsString());
  }
  EXPECT_EQ(second->usage().cache_hits(), 2);
  std::string metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_cache_hits_total"), 2);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_cache_misses_total"), 2);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_segments_total"), 4);  // the hit ran no model
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_spans_total"), 4);
  EXPECT_GT(MetricValue(metrics, "icae_encoder_cache_bytes"), 16 * 64 * 4);

  // The bypass flag neither reads nor counts.
  v1::CompressRequest bypass = request;
  bypass.set_bypass_cache(true);
  auto third = client.Compress(bypass);
  ASSERT_OK(third);
  EXPECT_FALSE(third->spans(0).usage().cache_hit());
  metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_cache_hits_total"), 2);
  EXPECT_EQ(MetricValue(metrics, "icae_encoder_segments_total"), 8);

  // Wire dtypes: the float32 slots rounded to nearest even, as 2-byte elements.
  const std::vector<float> f32 = FloatsFromF32(first->spans(0).slots().slots().data());
  for (v1::DataType dtype : {v1::BFLOAT16, v1::FLOAT16}) {
    v1::CompressRequest typed = request;
    typed.set_slot_dtype(dtype);
    auto got = client.Compress(typed);
    ASSERT_OK(got);
    const v1::Tensor& t = got->spans(0).slots().slots();
    EXPECT_EQ(t.dtype(), dtype);
    EXPECT_THAT(t.shape(), ::testing::ElementsAre(12, 64));
    EXPECT_EQ(t.data(), dtype == v1::BFLOAT16 ? ToBF16Bytes(f32) : ToF16Bytes(f32))
        << v1::DataType_Name(dtype);
  }
}

TEST_F(EncoderServerTest, ResponsesLargerThanGrpcsDefaultFourMegabytesPass) {
  // 16 spans x 5120 tokens = 5120 segments of 4 x 64 float32 slots: a 5.2 MB response, above
  // gRPC's 4 MiB default and within --max_message_bytes (64 MiB by default).
  StartServer({"--max_queue_segments", "8192", "--max_batch_segments", "256"});
  std::vector<std::vector<int>> spans;
  for (int i = 0; i < 16; ++i) spans.push_back(RandomIds(5120, 384, 200 + i));
  auto response = Client().Compress(IdsRequest(spans));
  ASSERT_OK(response);
  ASSERT_EQ(response->spans_size(), 16);
  EXPECT_GT(response->ByteSizeLong(), size_t{4} << 20);
  EXPECT_EQ(response->usage().segments(), 5120);
  EXPECT_THAT(response->spans(15).slots().slots().shape(), ::testing::ElementsAre(1280, 64));
}

TEST_F(EncoderServerTest, EveryBadInputGetsItsCodeAndNamesTheField) {
  StartServer({"--max_spans", "4", "--max_message_bytes", "300000"});
  EncoderClient client = Client();
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  using ::icae::testing::StatusIs;

  EXPECT_THAT(client.Compress(v1::CompressRequest()),
              StatusIs(kInvalid, AllOf(HasSubstr("spans"), HasSubstr("1..4"))));
  v1::CompressRequest unset;
  unset.add_spans()->set_id("no content");
  EXPECT_THAT(client.Compress(unset), StatusIs(kInvalid, HasSubstr("spans[0]: empty span")));
  v1::CompressRequest empty_text;
  empty_text.add_spans()->set_text("");
  EXPECT_THAT(client.Compress(empty_text), StatusIs(kInvalid, HasSubstr("spans[0].text")));
  v1::CompressRequest empty_ids = IdsRequest({{5}, {}});
  EXPECT_THAT(client.Compress(empty_ids),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[1].token_ids"), HasSubstr("empty"))));
  EXPECT_THAT(
      client.Compress(IdsRequest({RandomIds(5121, 384, 1)})),
      StatusIs(kInvalid, AllOf(HasSubstr("5121 tokens"), HasSubstr("max_input_tokens 5120"))));
  EXPECT_THAT(client.Compress(IdsRequest({{1}, {1}, {1}, {1}, {1}})),
              StatusIs(kInvalid, AllOf(HasSubstr("5 spans"), HasSubstr("max_spans 4"))));
  EXPECT_THAT(
      client.Compress(IdsRequest({{1, 2, 384}})),
      StatusIs(kInvalid, AllOf(HasSubstr("spans[0].token_ids[2] = 384"), HasSubstr("[0, 384)"))));
  EXPECT_THAT(client.Compress(IdsRequest({{-5}})),
              StatusIs(kInvalid, HasSubstr("spans[0].token_ids[0] = -5")));
  v1::CompressRequest bad_utf8;
  bad_utf8.add_spans()->set_text(std::string("caf\xc3", 4));
  bad_utf8.add_spans()->set_text("fine");
  bad_utf8.mutable_spans(1)->set_text(std::string("caf\xc3", 4));
  // Protobuf itself refuses the proto3 string; the server still names the span.
  EXPECT_THAT(client.Compress(bad_utf8),
              StatusIs(kInvalid, HasSubstr("spans[0].text: not valid UTF-8")));
  bad_utf8.mutable_spans(0)->set_text("fine");
  EXPECT_THAT(client.Compress(bad_utf8),
              StatusIs(kInvalid, HasSubstr("spans[1].text: not valid UTF-8")));
  for (int dtype : {static_cast<int>(v1::INT32), static_cast<int>(v1::INT64), 99}) {
    v1::CompressRequest typed = IdsRequest({{1, 2}});
    typed.set_slot_dtype(static_cast<v1::DataType>(dtype));
    EXPECT_THAT(client.Compress(typed), StatusIs(kInvalid, HasSubstr("slot_dtype"))) << dtype;
  }
  v1::CompressRequest long_id = IdsRequest({{1}});
  long_id.mutable_spans(0)->set_id(std::string(300, 'x'));
  EXPECT_THAT(client.Compress(long_id), StatusIs(kInvalid, HasSubstr("spans[0].id")));
  // 320 segments of 4 x 64 float32 slots: about 327 KB, more than --max_message_bytes allows.
  EXPECT_THAT(client.Compress(IdsRequest({RandomIds(5120, 384, 2)})),
              StatusIs(kInvalid, AllOf(HasSubstr("bytes"), HasSubstr("max_message_bytes 300000"))));
  // Text without a tokenizer (the golden model has none).
  v1::CompressRequest text;
  text.add_spans()->set_text("hello");
  EXPECT_THAT(client.Compress(text),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no tokenizer")));
  // The server is still fine and counted every refusal.
  EXPECT_OK(client.Compress(IdsRequest({{1, 2, 3}})));
  EXPECT_GE(
      Metric("icae_encoder_requests_total", {{"method", "Compress"}, {"code", "INVALID_ARGUMENT"}}),
      11);
}

}  // namespace
}  // namespace icae::testing
