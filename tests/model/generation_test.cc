// Generation: batching, sampling, stop strings, streaming text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "decoder_service/engine/offline.h"
#include "common/model/sampler.h"
#include "common/model/slot_decoder.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using testing::Expected;
using testing::LoadDecoder;
using testing::RawInput;
using testing::ScratchDir;
using testing::TestData;
using testing::ToIds;

TEST(GenerateTest, BatchEqualsEachAloneAndFinishedSequencesLeave) {
  auto decoder = LoadDecoder(TestData("tiny-llama"));
  ASSERT_NE(decoder, nullptr);
  std::vector<int> ids = ToIds(Expected("tiny-llama", "input_ids"));
  std::vector<decoder::LocalInput> inputs = {
      RawInput(*decoder, {ids.begin(), ids.begin() + 8}, 8),
      RawInput(*decoder, {ids.begin() + 3, ids.begin() + 20}, 2),
      RawInput(*decoder, {ids.begin(), ids.begin() + 1}, 5),
  };
  // A slots + AE request in the same batch.
  ContextPart slots;
  slots.slots = Expected("tiny-icae", "slots");
  inputs.push_back(decoder::LocalInput{PromptTemplate::kAe, {slots}, {}, {}});
  inputs.back().params.max_new_tokens = 12;

  auto batched = decoder::GenerateOffline(*decoder, inputs);
  ASSERT_OK(batched);
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto alone = decoder::GenerateOffline(*decoder, {inputs[i]});
    ASSERT_OK(alone);
    EXPECT_EQ((*batched)[i].ids, (*alone)[0].ids) << "request " << i;
    EXPECT_EQ((*batched)[i].ids.size(), static_cast<size_t>(inputs[i].params.max_new_tokens));
    EXPECT_EQ((*batched)[i].finish_reason, FinishReason::kLength);
  }
  EXPECT_EQ((*batched)[3].ids, ToIds(Expected("tiny-icae", "ae_greedy_ids")));
}

// Offline generation drives the engine: the callback may stop one input (the others go on
// untouched), and each step's logits come back when asked.
TEST(GenerateTest, OfflineCallbackCancelsOneInputAndStepLogitsArePerStep) {
  auto decoder = LoadDecoder(TestData("tiny-llama"));
  ASSERT_NE(decoder, nullptr);
  std::vector<int> ids = ToIds(Expected("tiny-llama", "input_ids"));
  // The first two inputs of BatchEqualsEachAlone..., which run to their length.
  std::vector<decoder::LocalInput> inputs = {RawInput(*decoder, {ids.begin(), ids.begin() + 8}, 8),
                                             RawInput(*decoder, {ids.begin() + 3, ids.begin() + 20}, 2)};
  for (decoder::LocalInput& input : inputs) input.keep_step_logits = true;
  std::vector<int> seen(2, 0);
  decoder::OfflineOptions options;
  options.on_token = [&seen](size_t index, int, const std::string&) {
    return ++seen[index] < 3 || index != 0;  // Input 0 stops after its third token.
  };
  auto out = decoder::GenerateOffline(*decoder, inputs, options);
  ASSERT_OK(out);
  EXPECT_EQ((*out)[0].finish_reason, FinishReason::kCancelled);
  EXPECT_EQ((*out)[0].ids.size(), 3u);
  EXPECT_EQ((*out)[1].finish_reason, FinishReason::kLength);
  auto uncut = decoder::GenerateOffline(*decoder, inputs);
  ASSERT_OK(uncut);
  EXPECT_EQ((*out)[0].ids, std::vector<int>((*uncut)[0].ids.begin(), (*uncut)[0].ids.begin() + 3));
  EXPECT_EQ((*out)[1].ids, (*uncut)[1].ids);
  for (const decoder::OfflineOutput& o : *out) {
    ASSERT_EQ(o.step_logits.size(), o.ids.size());
    for (size_t s = 0; s < o.ids.size(); ++s) {
      ASSERT_EQ(o.step_logits[s].size(), static_cast<size_t>(decoder->config().vocab_size));
      const auto best = std::max_element(o.step_logits[s].begin(), o.step_logits[s].end());
      EXPECT_EQ(best - o.step_logits[s].begin(), o.ids[s]) << "greedy step " << s;
    }
  }
  // A refused input fails the call, naming it.
  inputs[1].params.sampling.top_p = 2.0f;
  EXPECT_THAT(decoder::GenerateOffline(*decoder, inputs),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("input 1: ")));
}

TEST(GenerateTest, SamplingIsSeededAndTopKOneIsGreedy) {
  auto decoder = LoadDecoder(TestData("tiny-llama"));
  ASSERT_NE(decoder, nullptr);
  std::vector<int> prompt = ToIds(Expected("tiny-llama", "prompt_ids"));
  SamplingParams sampling;
  sampling.temperature = 1.5f;
  sampling.seed = 42;
  auto a = decoder::GenerateOffline(*decoder, {RawInput(*decoder, prompt, 16, sampling)});
  auto b = decoder::GenerateOffline(*decoder, {RawInput(*decoder, prompt, 16, sampling)});
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ((*a)[0].ids, (*b)[0].ids);
  std::set<std::vector<int>> distinct;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    sampling.seed = seed;
    auto out = decoder::GenerateOffline(*decoder, {RawInput(*decoder, prompt, 16, sampling)});
    ASSERT_OK(out);
    distinct.insert((*out)[0].ids);
  }
  EXPECT_GT(distinct.size(), 1u);  // Different seeds explore.

  sampling.top_k = 1;
  auto top1 = decoder::GenerateOffline(*decoder, {RawInput(*decoder, prompt, 8, sampling)});
  auto greedy = decoder::GenerateOffline(*decoder, {RawInput(*decoder, prompt, 8)});
  ASSERT_OK(top1);
  ASSERT_OK(greedy);
  EXPECT_EQ((*top1)[0].ids, (*greedy)[0].ids);
  std::vector<int> expected = ToIds(Expected("tiny-llama", "greedy_ids"));
  EXPECT_EQ((*greedy)[0].ids, std::vector<int>(expected.begin() + 8, expected.end()));
}

TEST(GenerateTest, InvalidParamsAreRefused) {
  auto decoder = LoadDecoder(TestData("tiny-llama"));
  ASSERT_NE(decoder, nullptr);
  decoder::LocalInput input = RawInput(*decoder, {1, 2, 3}, 4);
  input.params.sampling.top_p = 1.5f;
  EXPECT_THAT(decoder::GenerateOffline(*decoder, {input}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("top_p")));
  input = RawInput(*decoder, {1, 2, 3}, 0);
  EXPECT_THAT(decoder::GenerateOffline(*decoder, {input}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("max_new_tokens")));
  input = RawInput(*decoder, {1, 2, 3}, 4);
  input.params.stop = {"x"};
  EXPECT_THAT(
      decoder::GenerateOffline(*decoder, {input}),
      testing::StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("tokenizer")));
  EXPECT_THAT(decoder->BuildPrompt(PromptTemplate::kRaw, {}, {1, 384}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("prompt[1] = 384")));
  ContextPart bad;
  bad.slots = at::zeros({3, 32});
  EXPECT_THAT(decoder->BuildPrompt(PromptTemplate::kAe, {bad}, {}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("context[0].slots")));
}

TEST(PromptTest, TemplatesLayOutContextAndSpecialTokens) {
  auto decoder = LoadDecoder(TestData("tiny-llama"));
  ASSERT_NE(decoder, nullptr);
  auto adapter_rows = Expected("tiny-icae", "ae_input_embeds")[0];  // 4 slots + AE
  ContextPart slots;
  slots.slots = Expected("tiny-icae", "slots");
  ContextPart text;
  text.token_ids = {5, 6};
  PromptUsage usage;
  auto v1 = decoder->BuildPrompt(PromptTemplate::kIcaeV1, {slots, text}, {7, 8, 9}, &usage);
  ASSERT_OK(v1);
  ASSERT_EQ(v1->embeds.size(0), 4 + 2 + 1 + 3 + 1);
  EXPECT_EQ(usage.slot_tokens, 4);
  EXPECT_EQ(usage.text_tokens, 7);
  EXPECT_TRUE(v1->embeds.narrow(0, 0, 4).equal(slots.slots));
  EXPECT_TRUE(v1->embeds[6].equal(v1->embeds[10]));         // FT before and after the prompt.
  EXPECT_FALSE(v1->embeds[6].equal(adapter_rows[4]));  // ... and it is not the AE row.
  auto raw = decoder->BuildPrompt(PromptTemplate::kRaw, {text}, {7});
  ASSERT_OK(raw);
  EXPECT_EQ(raw->embeds.size(0), 3);
  EXPECT_FALSE(ParsePromptTemplate("chatml").ok());
  // Without a tokenizer and with a 384-token vocabulary, [INST] cannot be spelled.
  EXPECT_THAT(
      decoder->BuildPrompt(PromptTemplate::kIcaeV2Instruct, {slots}, {7}),
      testing::StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("[INST]")));
}

TEST(SamplerTest, TopPKeepsTheNucleusOnly) {
  std::vector<float> logits = {0.0f, 5.0f, 4.9f, -3.0f};
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_p = 0.5f;  // Token 1 alone holds > 50%.
  params.seed = 3;
  Sampler sampler(params);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(sampler.Sample(logits.data(), 4), 1);
  params.top_p = 0.9f;
  params.top_k = 2;
  Sampler wider(params);
  std::set<int> seen;
  for (int i = 0; i < 200; ++i) seen.insert(wider.Sample(logits.data(), 4));
  EXPECT_EQ(seen, (std::set<int>{1, 2}));
  EXPECT_EQ(Argmax(logits.data(), 4), 1);
  std::vector<float> ties = {1.0f, 3.0f, 3.0f};
  EXPECT_EQ(Argmax(ties.data(), 3), 1);
}

// Plain temperature sampling (no order needed) draws each id at its softmax probability.
TEST(SamplerTest, TemperatureSamplingFollowsTheSoftmax) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 1.7f) * 3.0f;
  SamplingParams params;
  params.temperature = 0.7f;
  params.seed = 11;
  Sampler sampler(params);
  std::vector<int> counts(50, 0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits.data(), 50)];
  double total = 0;
  for (float l : logits) total += std::exp(l / 0.7);
  for (int i = 0; i < 50; ++i) {
    EXPECT_NEAR(counts[i] / static_cast<double>(draws), std::exp(logits[i] / 0.7) / total, 0.01)
        << "id " << i;
  }
}

// The nucleus over a large vocabulary (found by partial selection) is the one a full sort gives.
TEST(SamplerTest, NucleusOfALargeVocabularyEqualsTheFullSortOne) {
  const int vocab = 5000;
  std::vector<float> logits(vocab);
  for (int i = 0; i < vocab; ++i) logits[i] = -static_cast<float>((i * 7919) % vocab) / 100.0f;
  for (float top_p : {0.3f, 0.6f, 0.95f}) {
    // Reference: ids by logit, the smallest prefix reaching top_p.
    std::vector<int> order(vocab);
    for (int i = 0; i < vocab; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    double total = 0;
    for (float l : logits) total += std::exp(l);
    std::set<int> nucleus;
    double cumulative = 0;
    for (int id : order) {
      nucleus.insert(id);
      cumulative += std::exp(logits[id]) / total;
      if (cumulative >= top_p) break;
    }
    SamplingParams params;
    params.temperature = 1.0f;
    params.top_p = top_p;
    params.seed = 5;
    Sampler sampler(params);
    std::set<int> seen;
    for (int i = 0; i < 8000; ++i) seen.insert(sampler.Sample(logits.data(), vocab));
    for (int id : seen) EXPECT_TRUE(nucleus.count(id)) << "id " << id << " outside the nucleus";
    EXPECT_GE(seen.size(), nucleus.size() * 9 / 10) << "top_p " << top_p;
  }
}

}  // namespace
}  // namespace icae
