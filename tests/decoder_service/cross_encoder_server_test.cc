// A cross-model encoder through both real services on loopback: an encoder serving a package (a
// small random model + an MLP projector written for the tokenized tiny-llama) and a decoder
// loaded with the same package. Compress gives embedding slots of the decoder's width, Generate
// reads them to exactly the ids of the offline library, and a decoder configured for another
// encoder refuses them with FAILED_PRECONDITION naming both ids.
#include "common/model/compressor.h"
#include "common/model/fingerprint.h"
#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class CrossEncoderServerTest : public DecoderServerTest {
 protected:
  static void TearDownTestSuite() {
    delete encoder_;
    encoder_ = nullptr;
    package_.clear();
    DecoderServerTest::TearDownTestSuite();
  }
  // A package for tiny-llama: a 1-layer, 32-wide encoder, 4 slots per 16 tokens.
  static const std::string& Package() {
    if (package_.empty()) {
      auto decoder = LoadModelConfig(TinyModelDir());
      EXPECT_OK(decoder);
      package_ = scratch_->Join("cross");
      EXPECT_OK(WriteRandomCrossEncoder(package_, TinyModelDir(),
                                        RandomLlamaConfig(32, 1, 2, 64, decoder->vocab_size, 128),
                                        4, 4, "mlp", 41));
    }
    return package_;
  }
  static EncoderClient& Encoder() {
    if (encoder_ == nullptr) {
      encoder_ =
          StartEncoder(Package() + "/encoder", Package(), scratch_->Join("cross-encoder.log"))
              .release();
    }
    return *encoder_->client;
  }

  inline static std::string package_;
  inline static EncoderProcess* encoder_ = nullptr;
};

TEST_F(CrossEncoderServerTest, SlotsRoundTripToTheDecoderTheyWereMadeFor) {
  auto info = Encoder().GetInfo();
  ASSERT_OK(info) << encoder_->process.Log();
  EXPECT_EQ(info->encoder_kind(), v1::ENCODER_KIND_CROSS);
  EXPECT_EQ(info->slot_kind(), v1::EMBEDDING);
  EXPECT_EQ(info->hidden_size(), 64);  // The decoder's width
  EXPECT_EQ(info->encoder_hidden_size(), 32);
  auto base = BaseModelFingerprint(TinyModelDir());
  ASSERT_OK(base);
  EXPECT_EQ(info->decoder_base_fingerprint(), *base);

  std::unique_ptr<Server> decoder =
      StartDecoder(TinyModelDir(), Package(), {}, scratch_->Join("cross-decoder.log"));
  ASSERT_NE(decoder, nullptr);
  EXPECT_EQ(decoder->info.accepted_encoder_id(), info->encoder_id());
  EXPECT_EQ(decoder->info.mem_size(), 4);

  v1::CompressRequest compress;
  compress.add_spans()->set_text("the quick brown fox jumps over the lazy dog and runs away fast");
  auto compressed = Encoder().Compress(compress);
  ASSERT_OK(compressed);
  const v1::MemorySlots& slots = compressed->spans(0).slots();
  EXPECT_EQ(slots.encoder_id(), info->encoder_id());
  ASSERT_EQ(slots.slots().shape_size(), 2);
  EXPECT_EQ(slots.slots().shape(1), 64);

  // The offline library: the same package on both sides.
  auto compressor = Compressor::Load(TinyModelDir(), Package(), Runtime());
  ASSERT_OK(compressor);
  auto offline_decoder = SlotDecoder::Load(TinyModelDir(), Package(), Runtime());
  ASSERT_OK(offline_decoder);
  // The encoder service tokenizes a text span with BOS.
  auto ids = (*offline_decoder)->tokenizer()->Encode(compress.spans(0).text(), /*add_bos=*/true);
  ASSERT_OK(ids);
  auto offline_slots = (*compressor)->CompressSpan(*ids);
  ASSERT_OK(offline_slots);
  auto wire = DecodeTensor(slots.slots(), 1 << 20);
  ASSERT_OK(wire);
  EXPECT_LT((*wire - *offline_slots).abs().max().item<float>(), 1e-5);

  ContextPart part;
  part.slots = *offline_slots;
  GenerationParams params;
  params.max_new_tokens = 12;
  auto offline = decoder::GenerateOffline(
      **offline_decoder, {decoder::LocalInput{PromptTemplate::kAe, {part}, {}, params}});
  ASSERT_OK(offline);

  v1::GenerateRequest ae;
  *ae.add_context()->mutable_slots() = slots;
  ae.set_template_name("ae");
  ae.set_max_new_tokens(12);
  auto response = decoder->client->Generate(ae);
  ASSERT_OK(response) << decoder->process.Log();
  EXPECT_EQ(Ids(response->token_ids()), (*offline)[0].ids);
  EXPECT_EQ(response->usage().slot_tokens(), slots.slots().shape(0));

  // The ICAE decoder of the same base was not configured for this encoder: refused, both named.
  auto refused = Tiny()->client->Generate(ae);
  EXPECT_THAT(refused.status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(info->encoder_id()),
                             HasSubstr(Tiny()->info.accepted_encoder_id()))));
  // Configured with --also_accept, it reads them.
  std::unique_ptr<Server> both = StartDecoder(TinyModelDir(), testing::TinyAdapter(),
                                              {"--also_accept", Package()},
                                              scratch_->Join("also-cross.log"));
  ASSERT_NE(both, nullptr);
  ASSERT_EQ(both->info.accepted_encoders_size(), 2);
  EXPECT_EQ(both->info.accepted_encoders(1).encoder_id(), info->encoder_id());
  v1::GenerateRequest raw = ae;
  raw.set_template_name("raw");
  raw.mutable_prompt_ids()->add_ids(30);
  EXPECT_OK(both->client->Generate(raw).status());
}

}  // namespace
}  // namespace icae::decoder
