// Request checks: each bad input is refused with a message naming the field and the limit.
#include "encoder_service/engine/request_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/encoder_service/encoder_test_util.h"
#include "tests/util/test_util.h"

namespace icae::encoder {
namespace {

using ::icae::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

RequestLimits Limits() {
  RequestLimits limits;
  limits.max_spans = 3;
  limits.max_input_tokens = 10;
  limits.vocab_size = 384;
  return limits;
}

SpanInput Ids(std::vector<int> ids, std::string id = "") {
  SpanInput span;
  span.id = std::move(id);
  span.kind = SpanInput::Kind::kTokenIds;
  span.token_ids = std::move(ids);
  return span;
}

SpanInput Text(std::string text) {
  SpanInput span;
  span.kind = SpanInput::Kind::kText;
  span.text = std::move(text);
  return span;
}

EncodeRequest Request(std::vector<SpanInput> spans) {
  EncodeRequest request;
  request.spans = std::move(spans);
  return request;
}

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

TEST(RequestValidationTest, AcceptsIdsAsGiven) {
  auto ids = PrepareSpans(Request({Ids({1, 2, 3}), Ids({383})}), Limits(), nullptr);
  ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<std::vector<int>>{{1, 2, 3}, {383}}));
}

TEST(RequestValidationTest, RefusesEachBadInputNamingFieldAndLimit) {
  EXPECT_THAT(PrepareSpans(Request({}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans"), HasSubstr("no spans"))));
  EXPECT_THAT(PrepareSpans(Request({Ids({1}), Ids({1}), Ids({1}), Ids({1})}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("4 spans"), HasSubstr("max_spans 3"))));
  EXPECT_THAT(PrepareSpans(Request({Ids({1}), SpanInput()}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[1]"), HasSubstr("empty span"))));
  EXPECT_THAT(PrepareSpans(Request({Ids({})}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].token_ids"), HasSubstr("empty"))));
  EXPECT_THAT(PrepareSpans(Request({Text("")}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].text"), HasSubstr("empty"))));
  EXPECT_THAT(PrepareSpans(Request({Ids(std::vector<int>(11, 5))}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].token_ids"), HasSubstr("11 tokens"),
                                       HasSubstr("max_input_tokens 10"))));
  EXPECT_THAT(
      PrepareSpans(Request({Ids({1}), Ids({4, 384})}), Limits(), nullptr),
      StatusIs(kInvalid, AllOf(HasSubstr("spans[1].token_ids[1] = 384"), HasSubstr("[0, 384)"))));
  EXPECT_THAT(PrepareSpans(Request({Ids({-1})}), Limits(), nullptr),
              StatusIs(kInvalid, HasSubstr("spans[0].token_ids[0] = -1")));
  EXPECT_THAT(PrepareSpans(Request({Text("ok \xc3\x28 bad")}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].text"), HasSubstr("UTF-8"))));
  EXPECT_THAT(PrepareSpans(Request({Ids({1}, std::string(257, 'i'))}), Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].id"), HasSubstr("256"))));
  EncodeRequest int_dtype = Request({Ids({1})});
  int_dtype.slot_dtype = DType::kInt32;
  EXPECT_THAT(PrepareSpans(int_dtype, Limits(), nullptr),
              StatusIs(kInvalid, AllOf(HasSubstr("slot_dtype"), HasSubstr("int32"))));
}

TEST(RequestValidationTest, TextNeedsATokenizer) {
  EXPECT_THAT(PrepareSpans(Request({Text("hello")}), Limits(), nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no tokenizer")));
}

// Text spans with the tiny model's tokenizer (trained once for the suite).
class TextValidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ::icae::testing::ScratchDir();
    auto copy = ::icae::testing::MakeModelCopy(dir_->path(), /*tokenizer=*/true);
    ASSERT_OK(copy);
    model_dir_ = new std::string(copy->model_dir);
    auto tokenizer = Tokenizer::LoadFromModelDir(copy->model_dir);
    ASSERT_OK(tokenizer);
    tokenizer_ = tokenizer->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_dir_;
    delete dir_;
  }
  static ::icae::testing::ScratchDir* dir_;
  static std::string* model_dir_;
  static Tokenizer* tokenizer_;
};
::icae::testing::ScratchDir* TextValidationTest::dir_ = nullptr;
std::string* TextValidationTest::model_dir_ = nullptr;
Tokenizer* TextValidationTest::tokenizer_ = nullptr;

TEST_F(TextValidationTest, TextIsTokenizedWithBosAndLengthChecked) {
  const std::string text = "the memory slots";
  auto reference = ::icae::testing::SpmEncode(*model_dir_ + "/tokenizer.model", text);
  ASSERT_OK(reference);
  reference->insert(reference->begin(), 1);  // BOS
  RequestLimits limits = Limits();
  limits.max_input_tokens = 1000;
  auto ids = PrepareSpans(Request({Text(text)}), limits, tokenizer_);
  ASSERT_OK(ids);
  EXPECT_EQ((*ids)[0], *reference);
  limits.max_input_tokens = static_cast<int>(reference->size()) - 1;
  EXPECT_THAT(PrepareSpans(Request({Text(text)}), limits, tokenizer_),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].text"), HasSubstr("max_input_tokens"))));
}

// A text too long to fit is refused by its byte count, before the tokenizer sees it (a legal
// multi-megabyte message used to be tokenized whole first).
TEST_F(TextValidationTest, TextTooLongIsRefusedByItsBytesBeforeTokenizing) {
  // The bound is the longest piece, checked naively over the vocabulary.
  size_t longest = 0;
  for (int id = 0; id < tokenizer_->vocab_size(); ++id) {
    longest = std::max(longest, tokenizer_->IdToPiece(id).size());
  }
  ASSERT_EQ(static_cast<size_t>(tokenizer_->max_piece_bytes()), longest);
  RequestLimits limits = Limits();
  limits.max_input_tokens = 100;
  const size_t cap = 100 * longest;
  const std::string text(cap + 1, 'a');
  EXPECT_THAT(PrepareSpans(Request({Text(text)}), limits, tokenizer_),
              StatusIs(kInvalid, AllOf(HasSubstr("spans[0].text"), HasSubstr("bytes"),
                                       HasSubstr("max_input_tokens 100"))));
  // At the cap the text is tokenized, and the token count decides.
  std::string words;
  while (words.size() + 4 <= cap) words += "the ";
  auto ids = PrepareSpans(Request({Text(words)}), limits, tokenizer_);
  EXPECT_THAT(ids, StatusIs(kInvalid, HasSubstr("tokens exceed max_input_tokens")));
}

}  // namespace
}  // namespace icae::encoder
