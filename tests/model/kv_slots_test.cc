// KV slots (500xCompressor) in the model library: the encoder's slots are its keys and values at
// the memory positions, the decoder reads a KV range exactly as a cache prefix it had computed
// itself, anywhere in the prompt, and refuses KV tensors of the wrong shape or place.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/io/mapped_file.h"
#include "common/model/adapter_writer.h"
#include "common/model/compressor.h"
#include "decoder_service/engine/offline.h"
#include "common/model/segmenter.h"
#include "common/model/slot_decoder.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::MaxAbsDiff;
using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::icae::testing::TestData;
using ::testing::HasSubstr;

class KvSlotsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    auto config = LoadModelConfig(ModelDir());
    ASSERT_OK(config);
    config_ = *config;
    AdapterConfig ac;
    ac.r = 4;
    ac.lora_alpha = 8;
    ac.target_modules = {"q_proj", "v_proj"};
    ac.mem_size = 4;
    ac.compression_rate = 4;
    ac.slot_kind = SlotKind::kKv;
    ASSERT_OK(SaveIcaeAdapter(dir_->Join("kv"), RandomAdapter(config_, ac, 5), "tiny-llama"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string ModelDir() { return TestData("tiny-llama"); }
  static std::string KvAdapter() { return dir_->Join("kv/adapter.safetensors"); }

  // The KV the decoder's own cache holds for `ids` read after `before` (positions
  // |before| .. |before| + |ids| - 1), as a KV-slot tensor [layers, 2, kv_heads, n, head_dim].
  static at::Tensor CachedKv(const Transformer& model, const std::vector<int>& before,
                             const std::vector<int>& ids) {
    std::vector<int64_t> all(before.begin(), before.end());
    all.insert(all.end(), ids.begin(), ids.end());
    KVCache cache = model.NewCache(static_cast<int64_t>(all.size()));
    model.Prefill(model.Embed(at::tensor(all, at::kLong)), cache);
    std::vector<at::Tensor> layers;
    const int64_t b = before.size(), e = all.size();
    for (int l = 0; l < model.config().num_layers; ++l) {
      layers.push_back(at::stack({cache.Keys(l, b, e), cache.Values(l, b, e)}, 0));
    }
    return at::stack(layers, 0).clone();
  }

  static ScratchDir* dir_;
  static ModelConfig config_;
};
ScratchDir* KvSlotsTest::dir_ = nullptr;
ModelConfig KvSlotsTest::config_;

TEST_F(KvSlotsTest, AdapterConfigCarriesTheKindIntoTheFingerprint) {
  auto kv = LoadAdapter(KvAdapter(), config_, /*with_lora=*/false);
  ASSERT_OK(kv);
  EXPECT_EQ(kv->config.slot_kind, SlotKind::kKv);
  auto read = ReadFileToString(dir_->Join("kv/adapter_config.json"));
  ASSERT_OK(read);
  std::string json = *read;
  ASSERT_THAT(json, HasSubstr("\"slot_kind\": \"kv\""));
  // The same bytes read as embedding slots are another encoder.
  const std::string other = dir_->Join("embedding");
  testing::CopyDir(dir_->Join("kv"), other);
  json.replace(json.find("\"kv\""), 4, "\"embedding\"");
  ASSERT_OK(WriteStringToFile(other + "/adapter_config.json", json));
  auto embedding = LoadAdapter(other, config_, false);
  ASSERT_OK(embedding);
  EXPECT_EQ(embedding->config.slot_kind, SlotKind::kEmbedding);
  EXPECT_NE(embedding->fingerprint, kv->fingerprint);
  json.replace(json.find("\"embedding\""), 11, "\"values\"");
  ASSERT_OK(WriteStringToFile(other + "/adapter_config.json", json));
  EXPECT_THAT(LoadAdapter(other, config_, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slot_kind")));
}

TEST_F(KvSlotsTest, SlotsAreTheEncodersKeysAndValuesAtTheMemoryPositions) {
  auto compressor = Compressor::Load(ModelDir(), KvAdapter(), Runtime());
  ASSERT_OK(compressor);
  ASSERT_EQ((*compressor)->slot_kind(), SlotKind::kKv);
  const std::vector<int> segment = {5, 17, 42, 99, 3, 250, 8, 61, 77, 300};
  auto slots = (*compressor)->CompressSegments({segment});
  ASSERT_OK(slots);
  const ModelConfig& c = config_;
  ASSERT_EQ(slots->sizes().vec(),
            (std::vector<int64_t>{1, c.num_layers, 2, c.num_kv_heads, 4, c.head_dim}));
  // Independently: the merged encoder prefills [segment][memory rows] into a cache (append
  // layout: positions 0 .. 13), whose entries at positions 10 .. 13 are the slots.
  auto adapter = LoadAdapter(KvAdapter(), config_, /*with_lora=*/true);
  ASSERT_OK(adapter);
  const Transformer& encoder = (*compressor)->transformer();
  c10::InferenceMode guard;
  at::Tensor embeds = at::cat({encoder.Embed(at::tensor(std::vector<int64_t>(segment.begin(),
                                                                             segment.end()),
                                                         at::kLong)),
                               adapter->MemoryEmbeddings()});
  KVCache cache = encoder.NewCache(embeds.size(0));
  encoder.Prefill(embeds, cache);
  for (int l = 0; l < c.num_layers; ++l) {
    EXPECT_LT(MaxAbsDiff((*slots)[0][l][0], cache.Keys(l, 10, 14)), 1e-5) << "layer " << l;
    EXPECT_LT(MaxAbsDiff((*slots)[0][l][1], cache.Values(l, 10, 14)), 1e-5) << "layer " << l;
  }
}

TEST_F(KvSlotsTest, ASpanJoinsItsSegmentsAlongTheSlotAxis) {
  auto compressor = Compressor::Load(ModelDir(), KvAdapter(), Runtime());
  ASSERT_OK(compressor);
  std::vector<int> span(40);
  for (int i = 0; i < 40; ++i) span[i] = 3 + (i * 37) % 300;
  auto whole = (*compressor)->CompressSpan(span);
  ASSERT_OK(whole);
  const SegmentPlan plan = PlanSegments(40, 4, 4);
  ASSERT_EQ(plan.num_segments, 3);
  ASSERT_EQ(whole->size(3), 12);
  for (int s = 0; s < 3; ++s) {
    const auto [begin, end] = plan.ranges[s];
    auto alone = (*compressor)->CompressSegments(
        {std::vector<int>(span.begin() + begin, span.begin() + end)});
    ASSERT_OK(alone);
    EXPECT_LT(MaxAbsDiff(whole->narrow(3, 4 * s, 4), (*alone)[0]), 1e-5) << "segment " << s;
  }
}

// A KV range is a cache prefix the decoder did not compute: given its own KV of some text, it
// continues exactly as after reading that text, at the start of the prompt or between parts.
TEST_F(KvSlotsTest, DecoderReadsKvSlotsAsTheCacheOfTheirText) {
  auto decoder = SlotDecoder::Load(ModelDir(), KvAdapter(), Runtime());
  ASSERT_OK(decoder);
  ASSERT_EQ((*decoder)->slot_kind(), SlotKind::kKv);
  const Transformer& model = (*decoder)->transformer();
  const std::vector<int> before = {7, 8, 9}, text = {40, 41, 42, 43, 44}, prompt = {60, 61};
  for (bool in_the_middle : {false, true}) {
    SCOPED_TRACE(in_the_middle ? "between token parts" : "at the start");
    const std::vector<int> lead = in_the_middle ? before : std::vector<int>{};
    ContextPart kv;
    kv.kind = SlotKind::kKv;
    {
      c10::InferenceMode guard;
      kv.slots = CachedKv(model, lead, text);
    }
    ContextPart lead_part, text_part;
    lead_part.token_ids = lead;
    text_part.token_ids = text;
    std::vector<ContextPart> with_kv = {kv}, with_text = {text_part};
    if (in_the_middle) {
      with_kv.insert(with_kv.begin(), lead_part);
      with_text.insert(with_text.begin(), lead_part);
    }
    PromptUsage usage;
    auto a = (*decoder)->BuildPrompt(PromptTemplate::kRaw, with_kv, prompt, &usage);
    auto b = (*decoder)->BuildPrompt(PromptTemplate::kRaw, with_text, prompt);
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(usage.slot_tokens, 5);
    ASSERT_EQ(a->kv.size(), 1u);
    EXPECT_EQ(a->kv[0].begin, static_cast<int64_t>(lead.size()));
    EXPECT_EQ(a->positions(), b->positions());
    GenerationParams params;
    params.max_new_tokens = 8;
    std::vector<decoder::LocalInput> inputs = {
        {PromptTemplate::kRaw, with_kv, prompt, params}, {PromptTemplate::kRaw, with_text, prompt, params}};
    for (decoder::LocalInput& input : inputs) input.keep_step_logits = true;
    auto out = decoder::GenerateOffline(**decoder, inputs);
    ASSERT_OK(out);
    EXPECT_EQ((*out)[0].ids, (*out)[1].ids);
    ASSERT_EQ((*out)[0].step_logits.size(), (*out)[1].step_logits.size());
    for (size_t s = 0; s < (*out)[0].step_logits.size(); ++s) {
      EXPECT_LT(MaxAbsDiff(at::tensor((*out)[0].step_logits[s]),
                           at::tensor((*out)[1].step_logits[s])),
                1e-4)
          << "step " << s;
    }
    // Prefilled in chunks that cut through the KV range: the same cache, the same last hidden.
    c10::InferenceMode guard;
    KVCache whole = model.NewCache(a->positions()), chunked = model.NewCache(a->positions());
    at::Tensor h_whole = PrefillPrompt(model, *a, 0, a->positions(), whole);
    at::Tensor h_last;
    for (int64_t at = 0; at < a->positions(); at += 2) {
      h_last = PrefillPrompt(model, *a, at, std::min(a->positions(), at + 2), chunked);
    }
    EXPECT_LT(MaxAbsDiff(h_whole[-1], h_last[-1]), 1e-5);
    EXPECT_EQ(chunked.length(), a->positions());
  }
}

TEST_F(KvSlotsTest, TrainingForwardWithGivenKvEqualsTheServedPrefill) {
  auto decoder = SlotDecoder::Load(ModelDir(), KvAdapter(), Runtime());
  ASSERT_OK(decoder);
  const Transformer& model = (*decoder)->transformer();
  c10::InferenceMode guard;
  ContextPart kv;
  kv.kind = SlotKind::kKv;
  kv.slots = at::randn({config_.num_layers, 2, config_.num_kv_heads, 6, config_.head_dim});
  ContextPart text;
  text.token_ids = {11, 12};
  auto prompt = (*decoder)->BuildPrompt(PromptTemplate::kIcaeV1, {text, kv}, {30, 31, 32});
  ASSERT_OK(prompt);
  const int64_t n = prompt->positions();
  KVCache cache = model.NewCache(n);
  at::Tensor served = PrefillPrompt(model, *prompt, 0, n, cache);
  // Forward with a KvOverride: the KV rows given, the rest computed.
  KvOverride given;
  given.mask = at::zeros({1, n}, at::kBool);
  given.mask.narrow(1, 2, 6).fill_(true);
  for (int l = 0; l < config_.num_layers; ++l) {
    for (int i = 0; i < 2; ++i) {
      at::Tensor full = at::zeros({1, config_.num_kv_heads, n, config_.head_dim});
      full.narrow(2, 2, 6).copy_(kv.slots[l][i].unsqueeze(0));
      (i == 0 ? given.kv.keys : given.kv.values).push_back(full);
    }
  }
  at::Tensor trained = model.Forward(prompt->embeds.unsqueeze(0),
                                     at::arange(n, at::kLong).unsqueeze(0), {}, nullptr, &given)[0];
  EXPECT_LT(MaxAbsDiff(served.narrow(0, 8, n - 8), trained.narrow(0, 8, n - 8)), 1e-5);
  EXPECT_LT(MaxAbsDiff(served.narrow(0, 0, 2), trained.narrow(0, 0, 2)), 1e-5);
}

TEST_F(KvSlotsTest, WrongShapesAndAKvEndAreRefusedNamingThePart) {
  auto decoder = SlotDecoder::Load(ModelDir(), KvAdapter(), Runtime());
  ASSERT_OK(decoder);
  const ModelConfig& c = config_;
  ContextPart text;
  text.token_ids = {11, 12};
  auto kv_part = [&](std::vector<int64_t> shape) {
    ContextPart p;
    p.kind = SlotKind::kKv;
    p.slots = at::zeros(shape);
    return p;
  };
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{c.num_layers + 1, 2, c.num_kv_heads, 4, c.head_dim},
                                         {c.num_layers, 3, c.num_kv_heads, 4, c.head_dim},
                                         {c.num_layers, 2, c.num_kv_heads + 1, 4, c.head_dim},
                                         {c.num_layers, 2, c.num_kv_heads, 0, c.head_dim},
                                         {c.num_layers, 2, c.num_kv_heads, 4, c.head_dim * 2},
                                         {4, c.hidden_size}}) {
    EXPECT_THAT((*decoder)->BuildPrompt(PromptTemplate::kRaw, {text, kv_part(shape)}, {5}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("context[1].slots: KV slots [layers, 2, kv_heads, n, "
                                   "head_dim] must be a float tensor [2, 2, 2, n > 0, 16]")));
  }
  // The last position gives the first token's logits: a KV slot there computes none.
  const ContextPart good = kv_part({c.num_layers, 2, c.num_kv_heads, 4, c.head_dim});
  EXPECT_THAT((*decoder)->BuildPrompt(PromptTemplate::kRaw, {text, good}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("context[1]: KV slots cannot end the prompt")));
  EXPECT_OK((*decoder)->BuildPrompt(PromptTemplate::kRaw, {good, text}, {}));
  EXPECT_OK((*decoder)->BuildPrompt(PromptTemplate::kAe, {good}, {}));
}

}  // namespace
}  // namespace icae
