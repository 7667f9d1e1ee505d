// icae ask --encoder HOST:PORT --decoder HOST:PORT --context-file F [F ...] --question Q
//          [--template NAME] [--max-new-tokens N] [--temperature T ...] [--stop STR ...]
//          [--slot-dtype float32|bfloat16|float16|int8] [--routing hash|round_robin]
//          [--handles] [--print-ids] [--timeout S] [TLS / token]
// The two-call RAG path in one command: each context file is compressed by the encoder (one
// span per file, one Compress call), then the decoder answers the question from the slots,
// streaming the answer to stdout. stderr gets the compression ratio, the bytes of slots on the
// wire next to the bytes of the text they replace, and the time of each stage. With several
// --encoder addresses, --routing hash sends each file to the replica its content hashes to (its
// repeats hit that replica's cache). --handles keeps the slots in the services' shared slot store
// and sends the decoder their keys (both services need --slot_store); a key that expired before
// the decoder read it is compressed again once.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/client/encoder_client.h"
#include "common/client/encoder_router.h"
#include "tools/cli/cli.h"
#include "tools/cli/generate_flags.h"
#include "tools/cli/remote_compress.h"
#include "tools/cli/remote_generate.h"

namespace icae::cli {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--context-file ", path, ": cannot read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int RunAsk(const Args& args) {
  const std::string cmd = "ask";
  FlagSet flags(
      "icae ask --encoder HOST:PORT --decoder HOST:PORT --context-file F [F ...] --question Q "
      "[options]");
  ClientOptions encoder_options, decoder_options;
  std::vector<std::string> context_files;
  std::string question, slot_dtype, routing = "round_robin";
  bool handles = false;
  double timeout_seconds = 300;
  flags.StringList("encoder", &encoder_options.addresses, "encoder address(es) HOST:PORT");
  flags.StringList("decoder", &decoder_options.addresses, "decoder address(es) HOST:PORT");
  flags.StringList("context_file", &context_files, "documents to compress, in order");
  flags.String("question", &question, "the question (the decoder's prompt)");
  flags.String("slot_dtype", &slot_dtype,
               "wire dtype of the slots: float32, bfloat16, float16 or int8 (default: the "
               "encoder's)");
  flags.String("routing", &routing,
               "with several --encoder addresses: hash (by document content) or round_robin");
  flags.Bool("handles", &handles,
             "send slot-store keys instead of the slots (services started with --slot_store)");
  GenerateFlags gen;
  RegisterGenerateFlags(flags, &gen);
  RegisterClientFlags(flags, &decoder_options, &timeout_seconds);
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (encoder_options.addresses.empty()) return UsageError(cmd, "--encoder needs HOST:PORT");
  if (decoder_options.addresses.empty()) return UsageError(cmd, "--decoder needs HOST:PORT");
  if (context_files.empty()) return UsageError(cmd, "--context-file needs at least one file");
  if (question.empty()) return UsageError(cmd, "--question is required");
  if (flags.IsSet("prompt") || flags.IsSet("prompt_ids")) {
    return UsageError(cmd, "use --question (not --prompt)");
  }
  if (!(timeout_seconds > 0)) return UsageError(cmd, "--timeout must be > 0");
  absl::StatusOr<v1::DataType> dtype =
      slot_dtype == "int8" ? absl::StatusOr<v1::DataType>(v1::INT8) : SlotWireDType(slot_dtype);
  if (!dtype.ok()) return UsageError(cmd, std::string(dtype.status().message()));
  absl::StatusOr<RoutingPolicy> policy = ParseRoutingPolicy(routing);
  if (!policy.ok()) return UsageError(cmd, std::string(policy.status().message()));
  gen.prompt = question;
  GenerateRequestSpec spec;
  if (absl::Status s = ResolveGenerateFlags(flags, gen, &spec); !s.ok()) {
    return UsageError(cmd, std::string(s.message()));
  }
  // The TLS and token flags apply to both services.
  decoder_options.timeout = absl::Seconds(timeout_seconds);
  encoder_options = WithAddresses(decoder_options, encoder_options.addresses);

  v1::CompressRequest compress;
  compress.set_slot_dtype(*dtype);
  compress.set_return_handles(handles);
  int64_t text_bytes = 0;
  for (const std::string& path : context_files) {
    absl::StatusOr<std::string> text = ReadWholeFile(path);
    if (!text.ok()) return UsageError(cmd, std::string(text.status().message()));
    text_bytes += static_cast<int64_t>(text->size());
    v1::Span* span = compress.add_spans();
    span->set_id(path);
    span->set_text(*std::move(text));
  }
  absl::StatusOr<EncoderRouter> encoder = EncoderRouter::Create(encoder_options, *policy);
  if (!encoder.ok()) return Failure(cmd, encoder.status());
  absl::StatusOr<DecoderClient> decoder = DecoderClient::Create(decoder_options);
  if (!decoder.ok()) return Failure(cmd, decoder.status());

  const absl::Time start = absl::Now();
  absl::StatusOr<v1::CompressResponse> compressed = encoder->Compress(compress);
  if (!compressed.ok()) return Failure(cmd, compressed.status());
  const absl::Duration compress_time = absl::Now() - start;
  if (compressed->spans_size() != context_files.size()) {
    return Failure(cmd, absl::DataLossError("the encoder did not return one span per file"));
  }
  v1::GenerateRequest request;
  for (const std::string& path : gen.slots) {  // Pre-compressed slot files come first.
    absl::StatusOr<v1::ContextPart> part = SlotsFileContext(path);
    if (!part.ok()) return Failure(cmd, part.status());
    *request.add_context() = *std::move(part);
  }
  const int first_document = request.context_size();
  int64_t tokens = 0, slots = 0, slot_bytes = 0, handle_count = 0;
  for (const v1::CompressedSpan& span : compressed->spans()) {
    tokens += span.usage().tokens();
    slots += span.usage().slots();
    handle_count += span.has_handle() ? 1 : 0;
    slot_bytes += static_cast<int64_t>(span.has_handle() ? span.handle().ByteSizeLong()
                                                         : span.slots().ByteSizeLong());
  }
  // Each document's part: its handle, or its slots (the store refused it, or no handles).
  const auto place_documents = [&](v1::CompressResponse& response) {
    for (int k = 0; k < response.spans_size(); ++k) {
      v1::CompressedSpan& span = *response.mutable_spans(k);
      v1::ContextPart* part = first_document + k < request.context_size()
                                  ? request.mutable_context(first_document + k)
                                  : request.add_context();
      if (span.has_handle()) {
        *part->mutable_handle() = std::move(*span.mutable_handle());
      } else {
        *part->mutable_slots() = std::move(*span.mutable_slots());
      }
    }
  };
  const v1::DataType wire_dtype = compressed->spans(0).has_handle()
                                      ? compressed->spans(0).handle().dtype()
                                      : compressed->spans(0).slots().slots().dtype();
  place_documents(*compressed);
  FillGenerateRequest(spec, &request);
  absl::StatusOr<StreamedAnswer> answer = StreamAnswer(*decoder, request, gen.print_ids);
  if (!answer.ok() && answer.status().code() == absl::StatusCode::kNotFound && handles) {
    // A handle expired between the two calls (nothing was streamed): compress again, once.
    absl::StatusOr<v1::CompressResponse> again = encoder->Compress(compress);
    if (!again.ok()) return Failure(cmd, again.status());
    place_documents(*again);
    answer = StreamAnswer(*decoder, request, gen.print_ids);
  }
  if (!answer.ok()) return Failure(cmd, answer.status());
  const absl::Duration total = absl::Now() - start;

  std::cerr << absl::StrFormat(
      "compression: %d tokens in %d file(s) -> %d slots (%.2fx); slots on the wire %d bytes "
      "(%s%s) vs %d bytes of text\n",
      tokens, context_files.size(), slots, slots > 0 ? static_cast<double>(tokens) / slots : 0.0,
      slot_bytes, absl::AsciiStrToLower(v1::DataType_Name(wire_dtype)),
      handle_count > 0 ? absl::StrFormat(", %d as slot-store handles", handle_count) : "",
      text_bytes);
  std::cerr << absl::StrFormat(
      "times: compress %.3f s (%d cache hits, %d store hits), first token %.3f s, generate %.3f s, total "
      "%.3f s\n",
      absl::ToDoubleSeconds(compress_time), compressed->usage().cache_hits(),
      compressed->usage().store_hits(),
      absl::ToDoubleSeconds(answer->first_chunk), absl::ToDoubleSeconds(answer->total),
      absl::ToDoubleSeconds(total));
  std::cerr << DescribeFinish(answer->last) << "\n";
  return kExitOk;
}

}  // namespace icae::cli
