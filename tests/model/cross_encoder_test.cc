// Cross-model encoders (MEND / xRAG / REFRAG style) in the model library: a package round-trips
// through its files with a fingerprint that follows its bytes, the projector equals a naive loop,
// the Compressor runs the package's small model and projects into the decoder's width, and both
// sides refuse a package that was not made for their model, naming both fingerprints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/compressor.h"
#include "common/model/cross_encoder.h"
#include "common/model/fingerprint.h"
#include "common/model/segmenter.h"
#include "common/model/slot_decoder.h"
#include "common/model/tensor_io.h"
#include "common/model/transformer.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"
#include "tools/bench/random_icae_model.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::icae::testing::TestData;
using ::testing::AllOf;
using ::testing::HasSubstr;

// The projector by scalar loops in double: y = W0 x + b0, then (mlp) W2 gelu(y) + b2.
std::vector<double> NaiveProject(ProjectorKind kind, const std::vector<at::Tensor>& p,
                                 const std::vector<double>& x) {
  auto apply = [](const at::Tensor& w, const at::Tensor& b, const std::vector<double>& in) {
    at::Tensor wd = w.to(at::kDouble).contiguous(), bd = b.to(at::kDouble).contiguous();
    const double* wp = wd.data_ptr<double>();
    std::vector<double> out(w.size(0));
    for (int64_t o = 0; o < w.size(0); ++o) {
      double sum = bd.data_ptr<double>()[o];
      for (int64_t i = 0; i < w.size(1); ++i) sum += wp[o * w.size(1) + i] * in[i];
      out[o] = sum;
    }
    return out;
  };
  std::vector<double> y = apply(p[0], p[1], x);
  if (kind == ProjectorKind::kLinear) return y;
  for (double& v : y) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  return apply(p[2], p[3], y);
}

class CrossEncoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    ASSERT_OK(WriteRandomCrossEncoder(dir_->Join("mlp"), DecoderDir(), SmallEncoder(), 4, 4,
                                      "mlp", 31));
    // Another shape: the base fingerprint hashes config.json and the safetensors headers.
    ModelConfig other = SmallEncoder();
    other.intermediate_size = 96;
    ASSERT_OK(WriteRandomCrossEncoder(dir_->Join("linear"), DecoderDir(), other, 2, 8, "linear",
                                      32));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string DecoderDir() { return TestData("tiny-llama"); }
  // Narrower than tiny-llama (hidden 64): the projector changes the width.
  static ModelConfig SmallEncoder() {
    auto decoder = LoadModelConfig(DecoderDir());
    return RandomLlamaConfig(32, 1, 2, 64, decoder.ok() ? decoder->vocab_size : 0, 128);
  }
  static std::string Package(const std::string& name) { return dir_->Join(name); }

  inline static ScratchDir* dir_ = nullptr;
};

TEST_F(CrossEncoderTest, ProjectorEqualsNaiveLoops) {
  for (const std::string name : {"linear", "mlp"}) {
    auto cross = LoadCrossEncoder(Package(name));
    ASSERT_OK(cross);
    const ProjectorKind kind = cross->config.projector;
    EXPECT_EQ(ProjectorKindName(kind), name);
    at::Tensor x = at::randn({3, 5, 32}, at::kFloat);
    at::Tensor y = ProjectSlots(kind, cross->projector, x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{3, 5, 64}));
    at::Tensor flat = x.reshape({-1, 32}).to(at::kDouble);
    for (int64_t r = 0; r < flat.size(0); ++r) {
      std::vector<double> in(flat[r].data_ptr<double>(), flat[r].data_ptr<double>() + 32);
      std::vector<double> want = NaiveProject(kind, cross->projector, in);
      at::Tensor got = y.reshape({-1, 64})[r];
      for (int64_t o = 0; o < 64; ++o) {
        ASSERT_NEAR(got[o].item<double>(), want[o], 1e-4) << name << " row " << r << " out " << o;
      }
    }
  }
}

TEST_F(CrossEncoderTest, PackageRoundTripsAndItsFingerprintFollowsItsBytes) {
  auto cross = LoadCrossEncoder(Package("mlp"));
  ASSERT_OK(cross);
  EXPECT_EQ(cross->config.mem_size, 4);
  EXPECT_EQ(cross->config.compression_rate, 4);
  EXPECT_EQ(cross->config.encoder_hidden, 32);
  EXPECT_EQ(cross->config.decoder_hidden, 64);
  EXPECT_EQ(cross->config.projector_hidden, 64);
  auto decoder_fp = BaseModelFingerprint(DecoderDir());
  ASSERT_OK(decoder_fp);
  EXPECT_EQ(cross->config.decoder_fingerprint, *decoder_fp);
  auto encoder_fp = BaseModelFingerprint(cross->encoder_model_dir());
  ASSERT_OK(encoder_fp);
  EXPECT_EQ(cross->config.encoder_fingerprint, *encoder_fp);
  EXPECT_EQ(cross->encoder_id(), EncoderId(*encoder_fp, cross->fingerprint));

  // Saved again elsewhere: the same tensors, the same fingerprint.
  ScratchDir copy;
  ASSERT_OK(SaveCrossEncoder(copy.path(), *cross));
  auto again = LoadCrossEncoder(copy.path());
  ASSERT_OK(again);
  EXPECT_EQ(again->fingerprint, cross->fingerprint);
  EXPECT_TRUE(at::equal(again->special, cross->special));
  EXPECT_TRUE(at::equal(again->projector[2], cross->projector[2]));

  // Another memory layout, or one changed weight, is another encoder.
  CrossEncoder uniform = *cross;
  uniform.config.memory_positions = MemoryPositions::kUniform;
  ASSERT_OK(SaveCrossEncoder(copy.path(), uniform));
  auto moved = LoadCrossEncoder(copy.path());
  ASSERT_OK(moved);
  EXPECT_NE(moved->fingerprint, cross->fingerprint);
  CrossEncoder nudged = *cross;
  nudged.special = cross->special.clone();
  nudged.special[0][0] += 1e-3;
  ASSERT_OK(SaveCrossEncoder(copy.path(), nudged));
  auto other = LoadCrossEncoder(copy.path());
  ASSERT_OK(other);
  EXPECT_NE(other->fingerprint, cross->fingerprint);
  EXPECT_FALSE(IsCrossEncoderPackage(DecoderDir()));
  EXPECT_TRUE(IsCrossEncoderPackage(Package("mlp")));
}

// The served slots are the small model's final-normed hidden states at the memory rows, through
// the projector: [segments * mem, decoder hidden], by the multi-span rule.
TEST_F(CrossEncoderTest, CompressorRunsTheSmallModelAndProjects) {
  auto cross = LoadCrossEncoder(Package("mlp"));
  ASSERT_OK(cross);
  auto compressor = Compressor::Load(cross->encoder_model_dir(), Package("mlp"), Runtime{});
  ASSERT_OK(compressor);
  EXPECT_TRUE((*compressor)->is_cross());
  EXPECT_EQ((*compressor)->slot_width(), 64);
  EXPECT_EQ((*compressor)->config().hidden_size, 32);
  EXPECT_EQ((*compressor)->encoder_id(), cross->encoder_id());
  EXPECT_EQ((*compressor)->decoder_fingerprint(), cross->config.decoder_fingerprint);
  EXPECT_EQ((*compressor)->max_segment_tokens(), 16);

  std::vector<int> ids(37);
  for (int i = 0; i < 37; ++i) ids[i] = 3 + (i * 29) % 200;
  auto slots = (*compressor)->CompressSpan(ids);
  ASSERT_OK(slots);
  ASSERT_EQ(slots->sizes(), (std::vector<int64_t>{3 * 4, 64}));  // 16 + 16 + 5 tokens

  auto small = Transformer::Load(cross->encoder_model_dir(), Runtime{});
  ASSERT_OK(small);
  SegmentPlan plan = PlanSegments(37, 4, 4);
  at::NoGradGuard no_grad;
  int64_t row = 0;
  for (const auto& [begin, end] : plan.ranges) {
    std::vector<int> segment(ids.begin() + begin, ids.begin() + end);
    at::Tensor hidden = EncodeSegmentBatch(**small, cross->memory_rows, {segment})[0];
    for (int64_t m = 0; m < 4; ++m, ++row) {
      at::Tensor h = hidden[m].to(at::kDouble).contiguous();
      std::vector<double> in(h.data_ptr<double>(), h.data_ptr<double>() + 32);
      std::vector<double> want = NaiveProject(ProjectorKind::kMlp, cross->projector, in);
      for (int64_t o = 0; o < 64; ++o) {
        ASSERT_NEAR((*slots)[row][o].item<double>(), want[o], 1e-4) << "slot " << row;
      }
    }
  }

  // Given nothing, or the decoder's base it writes for, the package runs its own encoder model.
  for (const std::string& model : {std::string(), DecoderDir()}) {
    auto same = Compressor::Load(model, Package("mlp"), Runtime{});
    ASSERT_OK(same) << model;
    EXPECT_EQ((*same)->encoder_id(), cross->encoder_id());
    auto again = (*same)->CompressSpan(ids);
    ASSERT_OK(again);
    EXPECT_TRUE(at::allclose(*again, *slots, 1e-5, 1e-5));
  }
  // Another encoder model is refused, naming both fingerprints.
  auto linear = LoadCrossEncoder(Package("linear"));
  ASSERT_OK(linear);
  EXPECT_THAT(Compressor::Load(linear->encoder_model_dir(), Package("mlp"), Runtime{}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(cross->config.encoder_fingerprint),
                             HasSubstr(linear->config.encoder_fingerprint))));
  // A model of the same shape with other weights has the same base fingerprint (config and
  // headers); the package also pins the small model's bytes, so it is refused all the same.
  ScratchDir twin;
  ASSERT_OK(WriteRandomCrossEncoder(twin.path(), DecoderDir(), SmallEncoder(), 4, 4, "mlp", 77));
  auto twin_cross = LoadCrossEncoder(twin.path());
  ASSERT_OK(twin_cross);
  ASSERT_EQ(twin_cross->config.encoder_fingerprint, cross->config.encoder_fingerprint);
  ASSERT_NE(twin_cross->config.encoder_weights_sha256, cross->config.encoder_weights_sha256);
  EXPECT_THAT(
      Compressor::Load(twin_cross->encoder_model_dir(), Package("mlp"), Runtime{}).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr(cross->config.encoder_weights_sha256),
                     HasSubstr(twin_cross->config.encoder_weights_sha256))));
}

TEST_F(CrossEncoderTest, DecoderAcceptsAPackageForItsOwnBaseOnly) {
  auto cross = LoadCrossEncoder(Package("linear"));
  ASSERT_OK(cross);
  auto decoder = SlotDecoder::Load(DecoderDir(), Package("linear"), Runtime{},
                                   {Package("mlp")});
  ASSERT_OK(decoder);
  EXPECT_EQ((*decoder)->accepted_encoder_id(), cross->encoder_id());
  EXPECT_EQ((*decoder)->mem_size(), 2);
  EXPECT_EQ((*decoder)->slot_kind(), SlotKind::kEmbedding);
  ASSERT_EQ((*decoder)->accepted_encoders().size(), 2u);
  EXPECT_TRUE(at::equal((*decoder)->special_embeddings(), cross->special));

  // The same decoder weights under another config: another base, refused by fingerprint.
  ScratchDir other;
  auto config = ReadFileToString(JoinPath(DecoderDir(), "config.json"));
  ASSERT_OK(config);
  std::string changed = *config;
  const size_t at = changed.find("\"rms_norm_eps\"");
  ASSERT_NE(at, std::string::npos);
  changed.insert(at, "\"note\": \"another base\", ");
  ASSERT_OK(WriteStringToFile(other.Join("config.json"), changed));
  auto weights = ReadFileToString(JoinPath(DecoderDir(), "model.safetensors"));
  ASSERT_OK(weights);
  ASSERT_OK(WriteStringToFile(other.Join("model.safetensors"), *weights));
  auto other_fp = BaseModelFingerprint(other.path());
  ASSERT_OK(other_fp);
  EXPECT_THAT(SlotDecoder::Load(other.path(), Package("linear"), Runtime{}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(cross->config.decoder_fingerprint), HasSubstr(*other_fp))));
}

// Every malformed package is InvalidArgument naming what is wrong; nothing is read out of bounds.
TEST_F(CrossEncoderTest, MalformedPackagesAreRefusedNamingTheField) {
  auto cross = LoadCrossEncoder(Package("mlp"));
  ASSERT_OK(cross);
  auto config_text = ReadFileToString(JoinPath(Package("mlp"), kCrossEncoderConfigFile));
  ASSERT_OK(config_text);
  struct Case {
    std::string from, to, message;
  };
  const std::vector<Case> config_cases = {
      {"\"projector\": \"mlp\"", "\"projector\": \"conv\"", "projector"},
      {"\"mem_size\": 4", "\"mem_size\": -4", "mem_size"},
      {"\"decoder_hidden_size\": 64", "\"decoder_hidden_size\": 65", "special_embed"},
      {"\"encoder_model\": \"encoder\"", "\"encoder_model\": \"../x\"", "encoder_model"},
      {"\"format\": \"icae-cross-encoder\"", "\"format\": \"other\"", "format"},
      {"\"encoder_weights_sha256\": \"", "\"encoder_weights_sha256\": \"XYZ",
       "encoder_weights_sha256"},
      {"\"memory_position_layout\": \"append\"", "\"memory_position_layout\": 3",
       "memory_position_layout"},
  };
  for (const Case& c : config_cases) {
    ScratchDir bad;
    ASSERT_OK(SaveCrossEncoder(bad.path(), *cross));
    std::string text = *config_text;
    const size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    ASSERT_OK(WriteStringToFile(bad.Join(kCrossEncoderConfigFile), text));
    EXPECT_THAT(LoadCrossEncoder(bad.path()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.to;
  }
  {  // A tensor of the wrong shape.
    ScratchDir bad;
    CrossEncoder wrong = *cross;
    ASSERT_OK(SaveCrossEncoder(bad.path(), wrong));
    SafetensorsWriter writer;
    ASSERT_OK(AddTensor(writer, "memory_embed", at::zeros({5, 32})));
    ASSERT_OK(AddTensor(writer, "special_embed", cross->special));
    for (size_t i = 0; i < 4; ++i) {
      ASSERT_OK(AddTensor(writer, i < 2 ? absl::StrCat("projector.0.", i ? "bias" : "weight")
                                        : absl::StrCat("projector.2.", i == 3 ? "bias" : "weight"),
                          cross->projector[i]));
    }
    ASSERT_OK(writer.WriteFile(bad.Join(kCrossEncoderWeightsFile)));
    EXPECT_THAT(LoadCrossEncoder(bad.path()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("memory_embed")));
    // One tensor more than the projector has.
    ASSERT_OK(AddTensor(writer, "projector.4.weight", at::zeros({2, 2})));
    ASSERT_OK(writer.WriteFile(bad.Join(kCrossEncoderWeightsFile)));
    EXPECT_THAT(LoadCrossEncoder(bad.path()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("projector.4.weight")));
  }
  {  // Not finite.
    ScratchDir bad;
    CrossEncoder nan = *cross;
    nan.projector[0] = cross->projector[0].clone();
    nan.projector[0][1][2] = std::nan("");
    ASSERT_OK(SaveCrossEncoder(bad.path(), nan));
    EXPECT_THAT(LoadCrossEncoder(bad.path()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("projector.0.weight"), HasSubstr("finite"))));
  }
  EXPECT_FALSE(LoadCrossEncoder(dir_->Join("missing")).ok());
}

}  // namespace
}  // namespace icae
