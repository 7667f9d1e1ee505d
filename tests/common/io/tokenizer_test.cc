// Tokenizer against SentencePiece's own command-line tools: a small Llama-style model (byte
// fallback, bos 1, eos 2, unk 0, identity normalization) is trained with spm_train at test time,
// and Encode must give the ids spm_encode prints for the same lines.
#include "common/io/incremental_decoder.h"
#include "common/io/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/io/mapped_file.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::testing::HasSubstr;

// Lines compared with spm_encode: unicode (CJK, emoji, RTL, combining marks), whitespace runs,
// tabs, digits, punctuation, the empty line, leading and trailing spaces.
const char* const kLines[] = {
    "Hello, world!",
    "",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    internal     spaces",
    "\ttab\tseparated\tvalues\t",
    "digits 0123456789 and 3.14159 and -42",
    "1,234,567.89",
    "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
    "\x88"
    "\xe3\x81\xa7\xe3\x81\x99\xe3\x80\x82",
    "\xe4\xb8\xad\xe6\x96\x87\xe6\x96\x87\xe6\x9c\xac\xef\xbc\x8c\xe8\xbf\x98\xe6\x9c\x89\xe6\x95"
    "\xb0"
    "\xe5\xad\x97"
    "123\xe3\x80\x82",
    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xeb\xac\xb8\xec\x9e\xa5",
    "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac",
    "\xd1\x80\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xb8\xd0\xb9 "
    "\xd1\x82\xd0\xb5\xd0\xba\xd1\x81\xd1\x82",
    "emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd mixed",
    "family \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 zwj",
    "math \xe2\x88\x91\xe2\x88\xab\xe2\x88\x9a\xe2\x88\x9e \xe2\x89\xa0 \xe2\x89\xa4",
    "punctuation !?.,;:'\"()[]{}<>-_=+*&^%$#@~`|\\/",
    "URL https://example.com/path?q=1&r=2#frag",
    "email someone@example.org",
    "CamelCaseIdentifiers and snake_case_names",
    "ALL CAPS SHOUTING",
    "a",
    " ",
    "  ",
    "x y z",
    "the quick brown fox jumps over the lazy dog",
    "tokens like <s> and </s> in text",
    "<unk> literal",
    "\xc2\xa0non-breaking space",
    "fullwidth \xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93",
    "combining e\xcc\x81 vs \xc3\xa9",
    "arabic \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 "
    "\xd8\xa8\xd8\xa7\xd9\x84\xd8\xb9\xd8\xa7\xd9\x84"
    "\xd9\x85",
    "hebrew \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd7\xa2\xd7\x95\xd7\x9c\xd7\x9d",
    "hindi \xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
    "thai \xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xb1\xe0\xb8\xaa\xe0\xb8\x94\xe0\xb8\xb5",
    "mixed \xe6\x97\xa5\xe6\x9c\xac and English and \xf0\x9f\x98\x80",
    "timestamp 2024-11-22T00:00:00Z",
    "hex 0xDEADBEEF 0b1010",
    "quotes \xe2\x80\x9csmart\xe2\x80\x9d \xe2\x80\x98single\xe2\x80\x99 "
    "\xc2\xabguillemets\xc2\xbb",
    "ellipsis\xe2\x80\xa6 and dash \xe2\x80\x94 and en\xe2\x80\x93"
    "dash",
    "currency \xe2\x82\xac"
    "100 \xc2\xa3"
    "50 \xc2\xa5"
    "1000 $5",
    "repeated aaaaaaaaaaaaaaaaaaaaaaaa",
    "repeated \xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
    "     ",
    "\t",
    " \t mixed \t whitespace \t ",
    "memory slots compress the context",
    "C++ code: std::vector<int> v{1, 2, 3};",
    "json {\"key\": [1, 2, 3], \"x\": null}",
    "rare \xea\x99\xae \xf0\x9d\x94\x98\xf0\x9d\x94\xab\xf0\x9d\x94\xa6",
    "end.",
    "Question? Answer! Done.",
    "0",
    "99 bottles of beer on the wall, 99 bottles of beer",
};

// Training text: a few hundred lines mixing English words, digits, punctuation and a little
// unicode, so frequent words get merges and everything else falls back to bytes.
std::string TrainingText() {
  const char* const kWords[] = {"the",     "memory", "slots", "compress", "context", "encoder",
                                "decoder", "token",  "model", "serving",  "tensor",  "byte",
                                "quick",   "brown",  "fox",   "jumps",    "over",    "lazy",
                                "dog",     "world",  "hello", "question", "answer",  "and"};
  const char* const kExtras[] = {"caf\xc3\xa9",
                                 "\xe6\x97\xa5\xe6\x9c\xac",
                                 "\xf0\x9f\x98\x80",
                                 "r\xc3\xa9sum\xc3\xa9",
                                 "\xd1\x80\xd1\x83\xd1\x81",
                                 "!",
                                 "?",
                                 ",",
                                 "(x)",
                                 "3.14"};
  std::string text;
  unsigned state = 12345;
  const auto next = [&state](unsigned n) {
    state = state * 1103515245u + 12345u;
    return (state >> 16) % n;
  };
  for (int line = 0; line < 400; ++line) {
    const int words = 3 + next(12);
    for (int w = 0; w < words; ++w) {
      if (w > 0) text += ' ';
      text += kWords[next(sizeof(kWords) / sizeof(kWords[0]))];
    }
    if (line % 3 == 0) text += " " + std::to_string(next(100000));
    if (line % 4 == 0) text += std::string(" ") + kExtras[next(10)];
    text += '\n';
  }
  return text;
}

// The directory on PATH holding `tool`, or "" when there is none.
std::string FindOnPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "", ':')) {
    std::string candidate = std::string(dir) + "/" + tool;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string spm_train = FindOnPath("spm_train");
    spm_encode_ = FindOnPath("spm_encode");
    ASSERT_FALSE(spm_train.empty() || spm_encode_.empty())
        << "spm_train/spm_encode not on PATH (Debian package sentencepiece; tools/setup.sh)";
    ASSERT_OK(WriteStringToFile(dir_.Join("train.txt"), TrainingText()));
    model_ = dir_.Join("m.model");
    const std::string command =
        spm_train + " --input=" + dir_.Join("train.txt") + " --model_prefix=" + dir_.Join("m") +
        " --vocab_size=400 --model_type=bpe --byte_fallback=true --unk_id=0 --bos_id=1"
        " --eos_id=2 --pad_id=-1 --normalization_rule_name=identity"
        " --remove_extra_whitespaces=false --split_digits=true --character_coverage=0.9995"
        " > " +
        dir_.Join("train.log") + " 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0)
        << command << "\n"
        << ReadFileToString(dir_.Join("train.log")).value_or("");
    auto tokenizer = Tokenizer::Load(model_);
    ASSERT_OK(tokenizer);
    tokenizer_ = std::move(*tokenizer);
  }

  // spm_encode's ids for each line of `lines`.
  std::vector<std::vector<int>> ReferenceIds(const std::vector<std::string>& lines) {
    std::string input;
    for (const std::string& line : lines) input += line + "\n";
    EXPECT_OK(WriteStringToFile(dir_.Join("lines.txt"), input));
    const std::string command = spm_encode_ + " --model=" + model_ + " --output_format=id < " +
                                dir_.Join("lines.txt") + " > " + dir_.Join("ids.txt");
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    std::ifstream in(dir_.Join("ids.txt"));
    std::vector<std::vector<int>> out;
    std::string line;
    while (std::getline(in, line)) {
      std::vector<int> ids;
      for (absl::string_view piece : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
        int id = 0;
        EXPECT_TRUE(absl::SimpleAtoi(piece, &id)) << line;
        ids.push_back(id);
      }
      out.push_back(std::move(ids));
    }
    return out;
  }

  ScratchDir dir_;
  std::string spm_encode_;
  std::string model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(TokenizerTest, EncodeMatchesSpmEncode) {
  const std::vector<std::string> lines(std::begin(kLines), std::end(kLines));
  ASSERT_GE(lines.size(), 50u);
  const std::vector<std::vector<int>> expected = ReferenceIds(lines);
  ASSERT_EQ(expected.size(), lines.size());
  size_t byte_fallback_lines = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto ids = tokenizer_->Encode(lines[i], /*add_bos=*/false);
    ASSERT_OK(ids) << lines[i];
    EXPECT_EQ(*ids, expected[i]) << "line " << i << ": '" << lines[i] << "'";
    // add_bos prepends exactly bos_id().
    auto with_bos = tokenizer_->Encode(lines[i], /*add_bos=*/true);
    ASSERT_OK(with_bos);
    ASSERT_EQ(with_bos->size(), ids->size() + 1);
    EXPECT_EQ(with_bos->front(), 1);
    EXPECT_TRUE(std::equal(ids->begin(), ids->end(), with_bos->begin() + 1));
    for (int id : *ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, tokenizer_->vocab_size());
      EXPECT_NE(id, tokenizer_->unk_id()) << "byte fallback leaves nothing unknown: " << lines[i];
    }
    for (int id : *ids) {
      if (tokenizer_->IdToPiece(id).rfind("<0x", 0) == 0) {
        ++byte_fallback_lines;
        break;
      }
    }
  }
  EXPECT_GT(byte_fallback_lines, 5u);  // The unicode lines really went through byte fallback.
  EXPECT_TRUE(tokenizer_->Encode("", false)->empty());
  EXPECT_EQ(*tokenizer_->Encode("", true), std::vector<int>{1});
}

// With identity normalization and no whitespace folding, SentencePiece decodes every encoding
// back to the original text (the dummy prefix is removed again).
TEST_F(TokenizerTest, DecodeInvertsEncode) {
  for (const char* line : kLines) {
    auto ids = tokenizer_->Encode(line, /*add_bos=*/true);
    ASSERT_OK(ids);
    auto text = tokenizer_->Decode(*ids);
    ASSERT_OK(text);
    EXPECT_EQ(*text, line);
  }
  // Control ids decode to nothing; ids outside the vocabulary are rejected.
  EXPECT_EQ(*tokenizer_->Decode({1, 2}), "");
  EXPECT_EQ(*tokenizer_->Decode({}), "");
  EXPECT_THAT(tokenizer_->Decode({5, 400}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token id 400")));
  EXPECT_THAT(tokenizer_->Decode({-1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token id -1")));
}

TEST_F(TokenizerTest, VocabularyAndSpecialIds) {
  EXPECT_TRUE(Tokenizer::Available());  // The full build links SentencePiece.
  EXPECT_EQ(tokenizer_->vocab_size(), 400);
  EXPECT_EQ(tokenizer_->unk_id(), 0);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_EQ(tokenizer_->pad_id(), -1);
  EXPECT_EQ(tokenizer_->IdToPiece(0), "<unk>");
  EXPECT_EQ(tokenizer_->IdToPiece(1), "<s>");
  EXPECT_EQ(tokenizer_->IdToPiece(2), "</s>");
  // Byte fallback pieces follow the specials: <0x00> .. <0xFF>.
  EXPECT_EQ(tokenizer_->IdToPiece(3), "<0x00>");
  EXPECT_EQ(tokenizer_->IdToPiece(3 + 0xE6), "<0xE6>");
  EXPECT_EQ(tokenizer_->PieceToId("<0xE6>"), 3 + 0xE6);
  EXPECT_EQ(tokenizer_->IdToPiece(-1), "");
  EXPECT_EQ(tokenizer_->IdToPiece(400), "");
  EXPECT_EQ(tokenizer_->PieceToId("no such piece"), tokenizer_->unk_id());
  // piece <-> id is a bijection over the vocabulary.
  for (int id = 0; id < tokenizer_->vocab_size(); ++id) {
    const std::string piece = tokenizer_->IdToPiece(id);
    ASSERT_FALSE(piece.empty()) << id;
    EXPECT_EQ(tokenizer_->PieceToId(piece), id) << piece;
  }
  // A frequent training word is one piece with the word-boundary marker.
  auto ids = tokenizer_->Encode("the", false);
  ASSERT_OK(ids);
  ASSERT_EQ(ids->size(), 1u);
  EXPECT_EQ(tokenizer_->IdToPiece(ids->front()), "\xe2\x96\x81the");
}

TEST_F(TokenizerTest, RejectsInvalidUtf8) {
  for (const std::string& bad : {std::string("\xff"), std::string("ok \xc3"),
                                 std::string("\xed\xa0\x80"), std::string("\xc0\x80")}) {
    EXPECT_THAT(tokenizer_->Encode(bad, false),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid UTF-8")));
  }
}

TEST_F(TokenizerTest, LoadErrors) {
  EXPECT_THAT(Tokenizer::Load(dir_.Join("absent.model")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.model")));
  ASSERT_OK(WriteStringToFile(dir_.Join("garbage.model"), "this is not a sentencepiece model"));
  EXPECT_THAT(Tokenizer::Load(dir_.Join("garbage.model")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot load tokenizer " + dir_.Join("garbage.model"))));
  ASSERT_OK(WriteStringToFile(dir_.Join("empty.model"), ""));
  EXPECT_THAT(Tokenizer::Load(dir_.Join("empty.model")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty.model")));
  // A truncated copy of the real model.
  auto model = ReadFileToString(model_);
  ASSERT_OK(model);
  ASSERT_OK(WriteStringToFile(dir_.Join("cut.model"), model->substr(0, model->size() / 2)));
  EXPECT_THAT(Tokenizer::Load(dir_.Join("cut.model")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cut.model")));
  // A directory is not a model file.
  EXPECT_THAT(Tokenizer::Load(dir_.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir_.path())));
  // LoadFromModelDir looks for tokenizer.model.
  EXPECT_THAT(Tokenizer::LoadFromModelDir(dir_.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("tokenizer.model")));
  ASSERT_OK(WriteStringToFile(dir_.Join("tokenizer.model"), *model));
  auto loaded = Tokenizer::LoadFromModelDir(dir_.path());
  ASSERT_OK(loaded);
  EXPECT_EQ(*(*loaded)->Encode("hello world", false), *tokenizer_->Encode("hello world", false));
}

}  // namespace
}  // namespace icae

namespace icae {
namespace {

// The incremental text equals Decode of every prefix: texts with multi-byte characters (spelled
// by byte-fallback pieces), and random id sequences that split characters, start with orphan
// continuation bytes and mix control ids.
TEST_F(TokenizerTest, IncrementalDecoderEqualsDecodingEveryPrefix) {
  std::vector<std::vector<int>> sequences;
  for (const char* text : {"Hello world, the quick fox.", "naïve café — 東京 🙂 ok", "  two  spaces\n"}) {
    auto ids = tokenizer_->Encode(text, /*add_bos=*/true);
    ASSERT_OK(ids);
    sequences.push_back(*ids);
  }
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> any(0, tokenizer_->vocab_size() - 1);
  std::uniform_int_distribution<int> byte_piece(3, 258);  // <0x00> .. <0xFF>
  for (int s = 0; s < 40; ++s) {
    std::vector<int> ids;
    for (int i = 0; i < 60; ++i) ids.push_back(i % 3 == 0 ? byte_piece(rng) : any(rng));
    sequences.push_back(ids);
  }
  for (const std::vector<int>& ids : sequences) {
    IncrementalDecoder decoder(tokenizer_.get());
    std::vector<int> prefix;
    for (int id : ids) {
      ASSERT_OK(decoder.Push(id));
      prefix.push_back(id);
      auto expected = tokenizer_->Decode(prefix);
      ASSERT_OK(expected);
      ASSERT_EQ(decoder.text(), *expected) << "after " << prefix.size() << " ids";
    }
    EXPECT_EQ(decoder.ids(), ids);
  }
  IncrementalDecoder decoder(tokenizer_.get());
  ASSERT_OK(decoder.Push(100));
  const std::string before = decoder.text();
  EXPECT_FALSE(decoder.Push(tokenizer_->vocab_size() + 5).ok());
  EXPECT_EQ(decoder.text(), before);
  EXPECT_EQ(decoder.ids().size(), 1u);
}

}  // namespace
}  // namespace icae
