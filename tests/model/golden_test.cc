// The model against reference outputs of HF transformers, PEFT and the ICAE v2 module
// (tests/testdata/README.md): logits, hidden states, slots, decoder logits and greedy ids.
#include <gtest/gtest.h>

#include "common/model/compressor.h"
#include "decoder_service/engine/offline.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using testing::Expected;
using testing::MaxAbsDiff;
using testing::TestRuntime;
using testing::TestData;
using testing::ToIds;

constexpr double kTol = 1e-4;

class BaseModelGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(BaseModelGolden, LogitsAndHiddenStatesMatchHf) {
  const std::string fixture = GetParam();
  auto model = Transformer::Load(TestData(fixture), TestRuntime());
  ASSERT_OK(model);
  c10::InferenceMode guard;
  at::Tensor ids = Expected(fixture, "input_ids");  // [1, 24]
  at::Tensor positions = at::arange(ids.size(1), at::kLong).unsqueeze(0);
  at::Tensor hidden = (*model)->Forward((*model)->Embed(ids), positions);
  EXPECT_LT(MaxAbsDiff(hidden, Expected(fixture, "last_hidden")), kTol);
  EXPECT_LT(MaxAbsDiff((*model)->Logits(hidden), Expected(fixture, "logits")), kTol);
}

TEST_P(BaseModelGolden, GreedyGenerationWithKvCacheMatchesHf) {
  const std::string fixture = GetParam();
  auto decoder = SlotDecoder::Load(TestData(fixture), "", TestRuntime());
  ASSERT_OK(decoder);
  at::Tensor prompt = Expected(fixture, "prompt_ids");
  at::Tensor greedy = Expected(fixture, "greedy_ids");
  const int prompt_len = prompt.size(1);
  decoder::LocalInput input{PromptTemplate::kRaw, {}, ToIds(prompt), {}};
  input.params.max_new_tokens = greedy.size(1) - prompt_len;
  input.keep_step_logits = true;
  auto out = decoder::GenerateOffline(**decoder, {input});
  ASSERT_OK(out);
  std::vector<int> expected = ToIds(greedy);
  expected.erase(expected.begin(), expected.begin() + prompt_len);
  EXPECT_EQ((*out)[0].ids, expected);
  at::Tensor step_logits = Expected(fixture, "greedy_step_logits");
  ASSERT_EQ((*out)[0].step_logits.size(), static_cast<size_t>(step_logits.size(0)));
  for (size_t s = 0; s < (*out)[0].step_logits.size(); ++s) {
    at::Tensor got = at::tensor((*out)[0].step_logits[s]);
    EXPECT_LT(MaxAbsDiff(got, step_logits[s]), kTol) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BaseModelGolden,
                         ::testing::Values("tiny-llama", "tiny-mistral", "tiny-mistral-bf16"));

TEST(IcaeGolden, SlotsMatchTheIcaeModule) {
  auto compressor = Compressor::Load(TestData("tiny-llama"),
                                     TestData("tiny-icae/adapter.safetensors"), TestRuntime());
  ASSERT_OK(compressor);
  auto slots = (*compressor)->CompressSpan(ToIds(Expected("tiny-icae", "context_ids")));
  ASSERT_OK(slots);
  EXPECT_LT(MaxAbsDiff(*slots, Expected("tiny-icae", "slots")), kTol);
  auto slots40 = (*compressor)->CompressSpan(ToIds(Expected("tiny-icae", "context40_ids")));
  ASSERT_OK(slots40);
  ASSERT_EQ(slots40->size(0), 12);
  EXPECT_LT(MaxAbsDiff(*slots40, Expected("tiny-icae", "slots40")), kTol);
}

TEST(IcaeGolden, AutoencodingDecodeMatchesTheIcaeModule) {
  auto decoder = SlotDecoder::Load(TestData("tiny-llama"),
                                   TestData("tiny-icae/adapter.safetensors"), TestRuntime());
  ASSERT_OK(decoder);
  for (const auto& [slots_name, prefix] :
       {std::pair<const char*, const char*>{"slots", "ae"}, {"slots40", "ae40"}}) {
    ContextPart part;
    part.slots = Expected("tiny-icae", slots_name);
    auto embeds = (*decoder)->BuildPrompt(PromptTemplate::kAe, {part}, {});
    ASSERT_OK(embeds);
    if (std::string(prefix) == "ae") {
      EXPECT_LT(MaxAbsDiff(embeds->embeds, Expected("tiny-icae", "ae_input_embeds")[0]), kTol);
    }
    decoder::LocalInput input{PromptTemplate::kAe, {part}, {}, {}};
    input.params.max_new_tokens = 12;
    input.keep_step_logits = true;
    auto out = decoder::GenerateOffline(**decoder, {input});
    ASSERT_OK(out);
    EXPECT_EQ((*out)[0].ids, ToIds(Expected("tiny-icae", std::string(prefix) + "_greedy_ids")))
        << prefix;
    at::Tensor first = at::tensor((*out)[0].step_logits[0]);
    EXPECT_LT(MaxAbsDiff(first, Expected("tiny-icae", std::string(prefix) + "_logits")[0]), kTol);
    if (std::string(prefix) == "ae") {
      at::Tensor steps = Expected("tiny-icae", "ae_step_logits");
      for (int s = 0; s < steps.size(0); ++s) {
        EXPECT_LT(MaxAbsDiff(at::tensor((*out)[0].step_logits[s]), steps[s]), kTol) << "step " << s;
      }
    }
  }
}

}  // namespace
}  // namespace icae
