// Request validation: every refusal through the engine's Enqueue (code and message, slot
// metadata, lengths checked before tokenizing), and PrepareRequest alone: a validated request
// holds ids and slot tensors, never embeddings (they are built at admission, BuildEmbeds), and
// its context prefix key is the same for the same content whatever the question, different for
// anything else.
#include "decoder_service/engine/request_validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "tests/decoder_service/engine_test_util.h"

namespace icae::decoder {
namespace {

using ::icae::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

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
  EXPECT_FALSE(prepared->input.embeds.defined());
  ASSERT_EQ(prepared->parts.size(), 2u);
  EXPECT_TRUE(prepared->parts[0].slots.is_same(slots));  // The tensor as sent, not a copy.
  EXPECT_EQ(prepared->parts[1].token_ids, (std::vector<int>{17, 29, 41}));
  // "[slots][ids][FT] 5 6 [FT]"
  EXPECT_EQ(prepared->positions(), slots.size(0) + 3 + 1 + 2 + 1);
  ASSERT_OK(BuildEmbeds(*model_, *prepared));
  EXPECT_EQ(prepared->input.positions(), prepared->positions());
  auto direct = model_->BuildPrompt(PromptTemplate::kIcaeV1,
                                    {ContextPart{slots, {}}, ContextPart{{}, {17, 29, 41}}},
                                    std::vector<int>{5, 6});
  ASSERT_OK(direct);
  EXPECT_TRUE(at::equal(prepared->input.embeds, direct->embeds));
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

// The metadata beside a slots tensor may be left out, but never contradicts the tensor or the
// adapter, and what callers claim in source_tokens never wraps the usage counts.
TEST_F(EngineTest, SlotMetadataIsCheckedAndUsageNeverWraps) {
  auto engine = MakeEngine();
  const at::Tensor slots = IcaeFixture("slots");
  const int rows = static_cast<int>(slots.size(0)), mem = model_->mem_size();
  auto refused = [&](auto edit) {
    GenerateInput input = AeInput(slots, 4);
    edit(input.context[0]);
    return engine->Enqueue(std::move(input), [](GenerationEvent) {}).status();
  };
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(refused([](ContextInput& p) { p.source_tokens = -5; }),
              StatusIs(kInvalid, HasSubstr("context[0].source_tokens: -5 is negative")));
  EXPECT_THAT(refused([&](ContextInput& p) { p.mem_size = mem + 1; }),
              StatusIs(kInvalid, HasSubstr("context[0].mem_size")));
  EXPECT_THAT(refused([&](ContextInput& p) { p.num_segments = rows / mem + 1; }),
              StatusIs(kInvalid, HasSubstr("context[0].num_segments")));
  EXPECT_THAT(refused([](ContextInput& p) { p.num_segments = -1; }),
              StatusIs(kInvalid, HasSubstr("context[0].num_segments")));
  // Consistent metadata is accepted; two parts each claiming INT32_MAX tokens saturate.
  GenerateInput input = AeInput(slots, 2);
  input.context[0].mem_size = mem;
  input.context[0].num_segments = rows / mem;
  input.context[0].source_tokens = std::numeric_limits<int32_t>::max();
  input.context.push_back(Slots(slots));
  input.context[1].source_tokens = std::numeric_limits<int32_t>::max();
  auto [final, ids] = RunAlone(*engine, std::move(input));
  EXPECT_OK(final.status);
  EXPECT_EQ(final.usage.uncompressed_context_tokens, std::numeric_limits<int32_t>::max());
}

// Lengths are checked before the work that grows with them: prompt_ids before they are
// embedded, text before it is tokenized (its bytes against room x the longest piece).
TEST_F(EngineTest, OverlongPromptsAndTextsAreRefusedBeforeTokenizingOrEmbedding) {
  EngineOptions options;
  options.max_context_tokens = 32;
  {
    auto engine = MakeEngine(options);
    GenerateInput input = AeInput(IcaeFixture("slots"), 8);
    input.template_name = "icae-v2-instruct";
    input.prompt_ids.assign(1000000, 7);
    EXPECT_THAT(
        engine->Enqueue(std::move(input), [](GenerationEvent) {}),
        StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("prompt_ids: 1000000 ids"),
                                                           HasSubstr("--max_context_tokens 32"))));
  }
  ::icae::testing::ScratchDir dir;
  ASSERT_OK(::icae::testing::MakeTokenizedTinyLlama(dir.path()));
  auto model = SlotDecoder::Load(dir.path(), testing::TinyAdapter(), Runtime());
  ASSERT_OK(model);
  const Tokenizer* tokenizer = (*model)->tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  options.threads = 1;
  auto engine = Engine::Create(model->get(), options, nullptr);
  ASSERT_OK(engine);
  const std::string huge(32 * tokenizer->max_piece_bytes() + 1, 'a');
  {
    GenerateInput input;
    input.template_name = "raw";
    ContextInput text;
    text.kind = ContextInput::Kind::kText;
    text.text = huge;
    input.context.push_back(std::move(text));
    EXPECT_THAT((*engine)->Enqueue(std::move(input), [](GenerationEvent) {}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("context[0].text"), HasSubstr("bytes cannot fit"))));
  }
  {
    GenerateInput input;
    input.template_name = "raw";
    input.prompt = huge;
    EXPECT_THAT((*engine)->Enqueue(std::move(input), [](GenerationEvent) {}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("prompt: "), HasSubstr("bytes cannot fit"))));
  }
}

TEST_F(EngineTest, ValidationErrors) {
  EngineOptions options;
  options.max_context_tokens = 32;
  options.max_new_tokens = 64;
  options.max_kv_tokens = 60;
  auto engine = MakeEngine(options);
  const at::Tensor slots = IcaeFixture("slots");
  auto enqueue = [&](GenerateInput input) {
    Collector c;
    absl::StatusOr<uint64_t> id = engine->Enqueue(std::move(input), c.Sink());
    if (id.ok()) c.Wait();
    return id.status();
  };
  auto with_slots = [&](const at::Tensor& t) {
    GenerateInput input = AeInput(slots, 8);
    input.context[0].slots = t;
    return input;
  };
  {
    // A client string echoed in an error is clipped: an 8,000-byte encoder_id must not push the
    // message past gRPC's metadata limit (the client would see RESOURCE_EXHAUSTED instead).
    GenerateInput input = AeInput(slots, 8);
    input.context[0].encoder_id = std::string(8000, 'e');
    absl::Status status = enqueue(std::move(input));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("... (8000 bytes)")));
    EXPECT_LT(status.message().size(), 400u) << status.message().size();
    GenerateInput bad_template = AeInput(slots, 8);
    bad_template.template_name = std::string(100000, 't');
    status = enqueue(std::move(bad_template));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown template")));
    EXPECT_LT(status.message().size(), 400u) << status.message().size();
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.context[0].encoder_id = "0123abcd";
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("0123abcd"), HasSubstr(model_->accepted_encoder_id()))));
  }
  EXPECT_THAT(enqueue(with_slots(slots.narrow(1, 0, 63))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[n > 0, 64]")));
  EXPECT_THAT(enqueue(with_slots(slots.reshape({-1}))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context[0].slots")));
  EXPECT_THAT(enqueue(with_slots(slots.narrow(0, 0, 0))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("n > 0")));
  EXPECT_THAT(enqueue(with_slots(slots.to(at::kInt))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("float")));
  for (double bad : {std::nan(""), double{INFINITY}, -double{INFINITY}}) {
    at::Tensor t = slots.clone();
    t[2][7] = bad;
    EXPECT_THAT(enqueue(with_slots(t)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN or Inf")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.context.push_back(Ids(std::vector<int>(30, 7)));  // 4 + 30 + AE > 32
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_context_tokens")));
  }
  EXPECT_THAT(enqueue(AeInput(slots, 65)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_new_tokens 64")));
  {
    GenerateInput input = AeInput(slots, 8);
    input.context.push_back(Ids({3, 999}));
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("999")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.template_name = "chatml";
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("chatml")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.params.stop = {"x"};
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("tokenizer")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.context.push_back(ContextInput());  // Text, but tiny-llama has no tokenizer.
    input.context.back().text = "hello";
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("context[1].text")));
  }
  {
    GenerateInput input = AeInput(slots, 8);
    input.params.sampling.temperature = -1;
    EXPECT_THAT(enqueue(std::move(input)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  }
  // A budget smaller than one request's reservation could never admit it.
  {
    EngineOptions small;
    small.max_kv_tokens = 10;
    auto tight = MakeEngine(small);
    Collector c;
    EXPECT_THAT(tight->Enqueue(AeInput(slots, 8), c.Sink()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_kv_tokens is 10")));
  }
  EXPECT_EQ(engine->state().waiting, 0);
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
