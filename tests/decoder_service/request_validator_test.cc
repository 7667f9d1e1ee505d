// PrepareRequest without the engine: a validated request holds ids and slot tensors, never
// embeddings (they are built at admission, BuildEmbeds), and its context prefix key is the same
// for the same content whatever the question, different for anything else.
#include "decoder_service/engine/request_validator.h"

#include <gtest/gtest.h>

#include "tests/decoder_service/engine_test_util.h"

namespace icae::decoder {
namespace {

using RequestValidatorTest = EngineTest;

GenerateInput Input(std::vector<int> question, at::Tensor slots, std::string tmpl = "icae-v1") {
  GenerateInput input;
  input.context.push_back(EngineTest::Slots(slots));
  input.context.push_back(EngineTest::Ids({17, 29, 41}));
  input.template_name = std::move(tmpl);
  input.prompt_ids = std::move(question);
  input.params.max_new_tokens = 4;
  return input;
}

TEST_F(RequestValidatorTest, AWaitingRequestHoldsIdsAndSlotsNotEmbeddings) {
  const at::Tensor slots = IcaeFixture("slots40");
  auto prepared = PrepareRequest(*model_, EngineOptions(), Input({5, 6}, slots));
  ASSERT_OK(prepared);
  EXPECT_FALSE(prepared->embeds.defined());
  ASSERT_EQ(prepared->parts.size(), 2u);
  EXPECT_TRUE(prepared->parts[0].slots.is_same(slots));  // The tensor as sent, not a copy.
  EXPECT_EQ(prepared->parts[1].token_ids, (std::vector<int>{17, 29, 41}));
  // "[slots][ids][FT] 5 6 [FT]"
  EXPECT_EQ(prepared->positions(), slots.size(0) + 3 + 1 + 2 + 1);
  ASSERT_OK(BuildEmbeds(*model_, *prepared));
  EXPECT_EQ(prepared->embeds.size(0), prepared->positions());
  auto direct = model_->BuildPrompt(PromptTemplate::kIcaeV1,
                                    {ContextPart{slots, {}}, ContextPart{{}, {17, 29, 41}}},
                                    std::vector<int>{5, 6});
  ASSERT_OK(direct);
  EXPECT_TRUE(at::equal(prepared->embeds, *direct));
}

TEST_F(RequestValidatorTest, PrefixKeysFollowTheContent) {
  const at::Tensor slots = IcaeFixture("slots40");
  auto key = [&](GenerateInput input, EngineOptions options = {}) {
    auto prepared = PrepareRequest(*model_, options, std::move(input));
    EXPECT_OK(prepared);
    return prepared.ok() ? std::make_pair(prepared->prefix_positions, prepared->prefix_key)
                         : std::make_pair(int64_t{-1}, PrefixKey());
  };
  auto [positions, a] = key(Input({5, 6}, slots));
  EXPECT_EQ(positions, slots.size(0) + 3 + 1);  // "[slots][ids][FT]"
  EXPECT_TRUE(a.SameContent(key(Input({9}, slots)).second));           // Another question.
  EXPECT_TRUE(a.SameContent(key(Input({5, 6}, slots.clone())).second));  // Equal bytes.
  EXPECT_FALSE(a.SameContent(key(Input({5, 6}, slots * 0.5)).second));
  EXPECT_FALSE(a.SameContent(key(Input({5, 6}, slots.to(at::kDouble))).second));
  EXPECT_FALSE(a.SameContent(key(Input({5, 6}, slots, "raw")).second));  // No [FT].
  GenerateInput other_text = Input({5, 6}, slots);
  other_text.context[1].token_ids = {17, 29, 42};
  EXPECT_FALSE(a.SameContent(key(std::move(other_text)).second));
  // "ae": the slots and ids, not [AE] (the last position is always prefilled).
  EXPECT_EQ(key(Input({}, slots, "ae")).first, slots.size(0) + 3);
  // Off, or opted out: no prefix.
  EngineOptions off;
  off.prefix_cache_bytes = 0;
  EXPECT_EQ(key(Input({5}, slots), off).first, 0);
  GenerateInput skip = Input({5}, slots);
  skip.skip_prefix_cache = true;
  EXPECT_EQ(key(std::move(skip)).first, 0);
  // A prefix whose KV alone would not fit the cache is not kept.
  EngineOptions small;
  small.prefix_cache_bytes = 1000;
  EXPECT_EQ(key(Input({5}, slots), small).first, 0);
}

TEST(ContextPrefixPiecesTest, EndsAfterTheContextAndItsSpecialTokens) {
  const TemplateTokens tokens{1, {10, 11}, {12}};
  auto pieces = [&](PromptTemplate tmpl, size_t parts, std::vector<int> prompt) {
    return ContextPrefixPieces(LayoutPrompt(tmpl, parts, prompt, tokens));
  };
  EXPECT_EQ(pieces(PromptTemplate::kIcaeV2Instruct, 2, {5}), 4u);  // <s>[INST] c c [FT]
  EXPECT_EQ(pieces(PromptTemplate::kIcaeV1, 1, {5}), 2u);          // c [FT]
  EXPECT_EQ(pieces(PromptTemplate::kRaw, 3, {5}), 3u);             // c c c
  EXPECT_EQ(pieces(PromptTemplate::kRaw, 3, {}), 2u);              // never the whole layout
  EXPECT_EQ(pieces(PromptTemplate::kAe, 1, {}), 1u);               // c, not [AE]
  EXPECT_EQ(pieces(PromptTemplate::kRaw, 0, {5}), 0u);             // no context
}

}  // namespace
}  // namespace icae::decoder
