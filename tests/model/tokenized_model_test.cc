// Generation with text: tiny-llama with a SentencePiece model trained at test time (stop strings,
// streamed text, the instruct template's [INST]). Not in the model-only build, which has no
// SentencePiece.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "decoder_service/engine/offline.h"
#include "common/model/slot_decoder.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using testing::CopyDir;
using testing::Expected;
using testing::LoadDecoder;
using testing::RawInput;
using testing::ScratchDir;
using testing::TestData;

// Trains a 384-piece SentencePiece model at test time so tiny-llama can speak text.
class TokenizedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CopyDir(TestData("tiny-llama"), dir_.path());
    std::ofstream corpus(dir_.Join("corpus.txt"));
    for (int i = 0; i < 400; ++i) {
      corpus << "The quick brown fox " << i << " jumps over the lazy dog; [INST] and [/INST] "
             << "appear in instructions number " << i * 7 << ".\n";
    }
    corpus.close();
    const std::string cmd = absl::StrCat(
        "spm_train --input=", dir_.Join("corpus.txt"), " --model_prefix=", dir_.Join("tokenizer"),
        " --vocab_size=384 --model_type=bpe --byte_fallback=true --bos_id=1 --eos_id=2 --unk_id=0",
        " --pad_id=-1 --minloglevel=2 > /dev/null 2>&1");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    decoder_ = LoadDecoder(dir_.path());
    ASSERT_NE(decoder_, nullptr);
    ASSERT_NE(decoder_->tokenizer(), nullptr);
  }

  ScratchDir dir_;
  std::unique_ptr<SlotDecoder> decoder_;
};

TEST_F(TokenizedModelTest, StopStringsEndGenerationAndAreNotReturned) {
  auto prompt = decoder_->Tokenize("The quick brown fox");
  ASSERT_OK(prompt);
  auto free_run = decoder::GenerateOffline(*decoder_, {RawInput(*decoder_, *prompt, 24)});
  ASSERT_OK(free_run);
  const std::string text = (*free_run)[0].text;
  ASSERT_GE(text.size(), 6u) << "the random model should produce some text";
  const std::string stop = text.substr(text.size() / 2, 2);
  const std::string expected = text.substr(0, text.find(stop));

  decoder::LocalInput input = RawInput(*decoder_, *prompt, 24);
  input.params.stop = {"never-appears", stop};
  std::string streamed;
  decoder::OfflineOptions options;
  options.on_token = [&](size_t, int, const std::string& delta) {
    streamed += delta;
    return true;
  };
  auto stopped = decoder::GenerateOffline(*decoder_, {input}, options);
  ASSERT_OK(stopped);
  EXPECT_EQ((*stopped)[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ((*stopped)[0].text, expected);
  EXPECT_EQ(streamed, expected);
  EXPECT_EQ(streamed.find(stop), std::string::npos);
}

TEST_F(TokenizedModelTest, StreamedTextConcatenatesToTheFinalText) {
  auto prompt = decoder_->Tokenize("jumps over");
  ASSERT_OK(prompt);
  std::string streamed;
  decoder::OfflineOptions options;
  options.on_token = [&](size_t, int, const std::string& delta) {
    streamed += delta;
    return true;
  };
  auto out = decoder::GenerateOffline(*decoder_, {RawInput(*decoder_, *prompt, 20)}, options);
  ASSERT_OK(out);
  EXPECT_EQ(streamed, (*out)[0].text);
  auto decoded = decoder_->tokenizer()->Decode((*out)[0].ids);
  ASSERT_OK(decoded);
  EXPECT_EQ(*decoded, (*out)[0].text);
}

TEST_F(TokenizedModelTest, InstructTemplateSpellsInstWithTheTokenizer) {
  ContextPart slots;
  slots.slots = Expected("tiny-icae", "slots");
  auto prompt = decoder_->Tokenize("fox");
  ASSERT_OK(prompt);
  PromptUsage usage;
  auto embeds = decoder_->BuildPrompt(PromptTemplate::kIcaeV2Instruct, {slots}, *prompt, &usage);
  ASSERT_OK(embeds);
  auto open = decoder_->tokenizer()->Encode("[INST]", false);
  auto close = decoder_->tokenizer()->Encode("[/INST]", false);
  ASSERT_OK(open);
  ASSERT_OK(close);
  EXPECT_EQ(usage.text_tokens,
            1 + static_cast<int>(open->size() + 1 + prompt->size() + close->size()));
  EXPECT_TRUE(embeds->embeds.narrow(0, 1 + open->size(), 4).equal(slots.slots));
}

}  // namespace
}  // namespace icae
