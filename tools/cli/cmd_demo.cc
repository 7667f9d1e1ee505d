// icae demo --encoder HOST:PORT --decoder HOST:PORT --model DIR --file TEXT [--span-tokens N]
// The product in one screen (make demo runs it against freshly started services): a held-out
// document is compressed by the encoder, reconstructed from its slots by the decoder (ae
// template, scored with BLEU-4), and continued from the slots next to a continuation from the
// original text; with the sizes on the wire and the time of every stage. With --row it prints one
// line instead: the slot kind, ratio, bytes on the wire and reconstruction BLEU (make demo sets
// the embedding and the KV encoders side by side with it). No LibTorch: the tokenizer (for the
// reference ids) is the only model file read locally.
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/client/decoder_client.h"
#include "common/client/encoder_client.h"
#include "common/io/mapped_file.h"
#include "common/io/tokenizer.h"
#include "tools/cli/cli.h"
#include "tools/cli/eval_bleu.h"
#include "tools/cli/remote_generate.h"

namespace icae::cli {
namespace {

struct Timed {
  v1::GenerateResponse response;
  absl::Duration time;
};

absl::StatusOr<Timed> TimedGenerate(const DecoderClient& decoder,
                                    const v1::GenerateRequest& request) {
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::GenerateResponse> response = decoder.Generate(request);
  if (!response.ok()) return response.status();
  return Timed{*std::move(response), absl::Now() - start};
}

std::vector<int> WithoutBos(std::vector<int> ids, int bos) {
  if (!ids.empty() && ids.front() == bos) ids.erase(ids.begin());
  return ids;
}

void PrintWrapped(const std::string& label, const std::string& text) {
  std::string line = label;
  for (char c : text) line += c == '\n' ? ' ' : c;
  std::cout << line << "\n";
}

}  // namespace

int RunDemo(const Args& args) {
  const std::string cmd = "demo";
  FlagSet flags("icae demo --encoder HOST:PORT --decoder HOST:PORT --model DIR --file TEXT");
  ClientOptions encoder_options, decoder_options;
  std::string model, file;
  int span_tokens = 0, continue_tokens = 40;
  bool row = false;
  double timeout_seconds = 300;
  flags.StringList("encoder", &encoder_options.addresses, "encoder address HOST:PORT");
  flags.StringList("decoder", &decoder_options.addresses, "decoder address HOST:PORT");
  flags.String("model", &model, "model directory (its tokenizer.model gives the reference ids)");
  flags.String("file", &file, "held-out document");
  flags.Int("span_tokens", &span_tokens, "tokens compressed (0 = one segment: mem_size * rate)");
  flags.Int("continue_tokens", &continue_tokens, "tokens generated for the continuations");
  flags.Bool("row", &row,
             "print one line: slot kind, ratio, bytes on the wire, reconstruction BLEU-4");
  RegisterClientFlags(flags, &decoder_options, &timeout_seconds);
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (encoder_options.addresses.empty() || decoder_options.addresses.empty()) {
    return UsageError(cmd, "--encoder and --decoder are required");
  }
  if (model.empty() || file.empty()) return UsageError(cmd, "--model and --file are required");
  if (span_tokens < 0 || continue_tokens <= 0)
    return UsageError(cmd, "bad --span-tokens/--continue-tokens");
  decoder_options.timeout = absl::Seconds(timeout_seconds);
  encoder_options = WithAddresses(decoder_options, encoder_options.addresses);

  auto tokenizer = Tokenizer::LoadFromModelDir(model);
  if (!tokenizer.ok()) return Failure(cmd, tokenizer.status());
  auto text = ReadFileToString(file);
  if (!text.ok()) return Failure(cmd, text.status());
  auto encoder = EncoderClient::Create(encoder_options);
  if (!encoder.ok()) return Failure(cmd, encoder.status());
  auto decoder = DecoderClient::Create(decoder_options);
  if (!decoder.ok()) return Failure(cmd, decoder.status());
  auto encoder_info = encoder->GetInfo();
  if (!encoder_info.ok()) return Failure(cmd, encoder_info.status());
  auto decoder_info = decoder->GetInfo();
  if (!decoder_info.ok()) return Failure(cmd, decoder_info.status());

  // The document's first span, tokenized as the encoder tokenizes text (BOS first).
  auto all_ids = (*tokenizer)->Encode(*text, /*add_bos=*/true);
  if (!all_ids.ok()) return Failure(cmd, all_ids.status());
  if (span_tokens == 0) span_tokens = encoder_info->mem_size() * encoder_info->compression_rate();
  std::vector<int> span(all_ids->begin(),
                        all_ids->begin() + std::min<size_t>(all_ids->size(), span_tokens));
  const int bos = (*tokenizer)->bos_id();
  auto span_text = (*tokenizer)->Decode(WithoutBos(span, bos));
  if (!span_text.ok()) return Failure(cmd, span_text.status());

  if (!row) std::cout << absl::StrFormat(
      "ICAE demo: encoder %s (%s), decoder %s\n  model %s, hidden %d, %d slots per %d tokens\n"
      "  encoder_id %s\n\n",
      encoder->connection().target(), encoder_info->device(), decoder->connection().target(),
      encoder_info->base_model(), encoder_info->hidden_size(), encoder_info->mem_size(),
      encoder_info->mem_size() * encoder_info->compression_rate(), encoder_info->encoder_id());

  // 1. Compress.
  v1::CompressRequest compress;
  v1::Span* request_span = compress.add_spans();
  request_span->set_id(file);
  for (int id : span) request_span->mutable_token_ids()->add_ids(id);
  compress.set_bypass_cache(true);
  const absl::Time compress_start = absl::Now();
  auto compressed = encoder->Compress(compress);
  if (!compressed.ok()) return Failure(cmd, compressed.status());
  const absl::Duration compress_time = absl::Now() - compress_start;
  const v1::MemorySlots& slots = compressed->spans(0).slots();
  const int num_slots = static_cast<int>(compressed->spans(0).usage().slots());
  if (!row) std::cout << absl::StrFormat(
      "1. compress   %d tokens -> %d slots (%.1fx) in %.0f ms; on the wire %d bytes of %s "
      "slots (%d bytes as a MemorySlots message) vs %d bytes of UTF-8 text\n",
      span.size(), num_slots, static_cast<double>(span.size()) / num_slots,
      absl::ToDoubleMilliseconds(compress_time), slots.slots().data().size(),
      v1::DataType_Name(slots.slots().dtype()), slots.ByteSizeLong(), span_text->size());

  // 2. Reconstruct from the slots alone.
  v1::GenerateRequest reconstruct;
  *reconstruct.add_context()->mutable_slots() = slots;
  reconstruct.set_template_name("ae");
  reconstruct.set_max_new_tokens(static_cast<int>(span.size()) + 8);
  auto rebuilt = TimedGenerate(*decoder, reconstruct);
  if (!rebuilt.ok()) return Failure(cmd, rebuilt.status());
  std::vector<int> hypothesis(rebuilt->response.token_ids().begin(),
                              rebuilt->response.token_ids().end());
  const std::vector<int> reference = WithoutBos(span, bos);
  hypothesis = WithoutBos(hypothesis, bos);
  const double bleu = CorpusBleu({hypothesis}, {reference});
  const bool kv = slots.kind() == v1::KV;
  if (row) {
    const bool cross = encoder_info->encoder_kind() == v1::ENCODER_KIND_CROSS;
    std::cout << absl::StrFormat(
        "  %-9s  %4d tokens -> %3d slots (%4.1fx)  %7d bytes (%s)  BLEU-4 %.3f\n",
        cross ? "cross" : kv ? "KV" : "embedding", span.size(), num_slots,
        static_cast<double>(span.size()) / num_slots, slots.slots().data().size(),
        v1::DataType_Name(slots.slots().dtype()), bleu);
    return kExitOk;
  }
  std::cout << absl::StrFormat(
      "2. reconstruct from the %d slots (template ae) in %.0f ms: BLEU-4 %.3f, exact match %s\n",
      num_slots, absl::ToDoubleMilliseconds(rebuilt->time), bleu,
      hypothesis == reference ? "yes" : "no");
  PrintWrapped("   original:       ", *span_text);
  PrintWrapped("   reconstruction: ", rebuilt->response.text());

  // 3. Continue the document from its slots, and from its text for comparison.
  v1::GenerateRequest from_slots;
  *from_slots.add_context()->mutable_slots() = slots;
  from_slots.set_template_name("raw");
  from_slots.set_max_new_tokens(continue_tokens);
  // KV slots compute no output of their own: the document's next token starts both continuations.
  if (kv && all_ids->size() > span.size()) {
    from_slots.mutable_prompt_ids()->add_ids((*all_ids)[span.size()]);
  }
  v1::GenerateRequest from_text = from_slots;
  from_text.clear_context();
  for (int id : span) from_text.add_context()->mutable_token_ids()->add_ids(id);
  auto cont_slots = TimedGenerate(*decoder, from_slots);
  if (!cont_slots.ok()) return Failure(cmd, cont_slots.status());
  auto cont_text = TimedGenerate(*decoder, from_text);
  if (!cont_text.ok()) return Failure(cmd, cont_text.status());
  std::cout << absl::StrFormat(
      "3. continue   from %d slots: %.0f ms (first token %.0f ms); from the %d-token text: %.0f ms "
      "(first token %.0f ms)\n",
      num_slots, absl::ToDoubleMilliseconds(cont_slots->time),
      cont_slots->response.usage().time_to_first_token_seconds() * 1e3, span.size(),
      absl::ToDoubleMilliseconds(cont_text->time),
      cont_text->response.usage().time_to_first_token_seconds() * 1e3);
  PrintWrapped("   from slots: ...", cont_slots->response.text());
  PrintWrapped("   from text:  ...", cont_text->response.text());
  // The context's positions in the decoder's KV cache. (usage.kv_cache_bytes is each request's
  // own cache, which leaves out a context prefix the decoder shares: the text's first tokens
  // are one, the slots, the last piece of their prompt, are not; so those bytes do not compare.)
  std::cout << absl::StrFormat(
      "\n   KV cache: the context takes %d positions from slots, %d from the text (%.1fx fewer)\n",
      num_slots, span.size(), static_cast<double>(span.size()) / num_slots);
  return kExitOk;
}

}  // namespace icae::cli
