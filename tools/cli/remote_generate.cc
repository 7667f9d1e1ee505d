#include "tools/cli/remote_generate.h"

#include <cstdio>
#include <iostream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/codec/proto_dtype.h"
#include "common/io/slots_file.h"

namespace icae::cli {

bool HasDecoderFlag(const Args& args) {
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (arg == "--decoder" || absl::StartsWith(arg, "--decoder=")) return true;
  }
  return false;
}

ClientOptions WithAddresses(ClientOptions shared, std::vector<std::string> addresses) {
  shared.addresses = std::move(addresses);
  return shared;
}

void RegisterClientFlags(FlagSet& flags, ClientOptions* options, double* timeout_seconds) {
  flags.Double("timeout", timeout_seconds, "deadline of each call, seconds");
  flags.Bool("tls", &options->tls, "connect with TLS (implied by the --tls-* files)");
  flags.String("tls_ca", &options->tls_ca_file, "PEM CA bundle to verify the server");
  flags.String("tls_cert", &options->tls_cert_file, "PEM client certificate (mutual TLS)");
  flags.String("tls_key", &options->tls_key_file, "PEM client key (mutual TLS)");
  flags.String("tls_server_name", &options->tls_server_name, "name expected in the certificate");
  flags.String("auth_token_file", &options->auth_token_file, "file holding the bearer token");
}

absl::StatusOr<v1::ContextPart> SlotsFileContext(const std::string& path) {
  absl::StatusOr<SlotsFile> file = ReadSlotsFile(path);
  if (!file.ok()) return file.status();
  v1::ContextPart part;
  v1::MemorySlots* slots = part.mutable_slots();
  v1::Tensor* tensor = slots->mutable_slots();
  tensor->set_dtype(ToProtoDataType(file->dtype));
  for (int64_t d : file->shape) tensor->add_shape(d);
  tensor->set_data(std::move(file->data));
  slots->set_kind(file->kind == SlotKind::kKv ? v1::KV : v1::EMBEDDING);
  slots->set_encoder_id(file->encoder_id);
  slots->set_source_tokens(file->source_tokens);
  slots->set_num_segments(file->num_segments);
  slots->set_mem_size(file->mem_size);
  return part;
}

void FillGenerateRequest(const GenerateRequestSpec& spec, v1::GenerateRequest* request) {
  request->set_template_name(spec.template_name);
  request->set_prompt(spec.prompt_text);
  for (int id : spec.prompt_ids) request->mutable_prompt_ids()->add_ids(id);
  request->set_max_new_tokens(spec.params.max_new_tokens);
  v1::SamplingParams* sampling = request->mutable_sampling();
  sampling->set_temperature(spec.params.sampling.temperature);
  sampling->set_top_k(spec.params.sampling.top_k);
  sampling->set_top_p(spec.params.sampling.top_p);
  if (spec.params.sampling.seed) sampling->set_seed(*spec.params.sampling.seed);
  for (const std::string& stop : spec.params.stop) request->add_stop(stop);
}

absl::StatusOr<StreamedAnswer> StreamAnswer(const DecoderClient& decoder,
                                            const v1::GenerateRequest& request, bool print_ids) {
  StreamedAnswer answer;
  bool any_text = false;
  const absl::Time start = absl::Now();
  absl::Status status = decoder.GenerateStream(request, [&](const v1::GenerateChunk& chunk) {
    if (answer.ids.empty() && chunk.token_ids_size() > 0) answer.first_chunk = absl::Now() - start;
    answer.ids.insert(answer.ids.end(), chunk.token_ids().begin(), chunk.token_ids().end());
    if (!chunk.text().empty()) {
      any_text = true;
      if (!print_ids) {
        std::fwrite(chunk.text().data(), 1, chunk.text().size(), stdout);
        std::fflush(stdout);
      }
    }
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) answer.last = chunk;
    return true;
  });
  answer.total = absl::Now() - start;
  if (!status.ok()) {
    if (any_text && !print_ids) std::fputc('\n', stdout);
    return status;
  }
  if (print_ids || !any_text) {
    std::cout << absl::StrJoin(answer.ids, ",") << "\n";
  } else {
    std::cout << "\n";
  }
  std::cout.flush();
  return answer;
}

std::string DescribeFinish(const v1::GenerateChunk& last) {
  std::string reason = absl::AsciiStrToLower(v1::FinishReason_Name(last.finish_reason()));
  const v1::GenerateUsage& u = last.usage();
  return absl::StrCat("finish_reason=", reason, " generated=", u.generated_tokens(),
                      " slot_tokens=", u.slot_tokens(), " prompt_tokens=", u.prompt_tokens(),
                      " uncompressed_context_tokens=", u.uncompressed_context_tokens(),
                      " queue_s=", u.queue_seconds(), " ttft_s=", u.time_to_first_token_seconds(),
                      " total_s=", u.total_seconds());
}

int RunRemoteGenerate(const Args& args) {
  const std::string cmd = "generate";
  FlagSet flags(
      "icae generate --decoder HOST:PORT [HOST:PORT ...] [--slots FILE ...] [--template NAME] "
      "[--prompt STR | --prompt-ids IDS] [--max-new-tokens N] [--print-ids] [options]");
  ClientOptions client;
  double timeout_seconds = 300;
  flags.StringList("decoder", &client.addresses,
                   "decoder address(es) HOST:PORT (several: round-robin), or a dns:/// target");
  GenerateFlags gen;
  RegisterGenerateFlags(flags, &gen);
  RegisterClientFlags(flags, &client, &timeout_seconds);
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (client.addresses.empty()) return UsageError(cmd, "--decoder needs HOST:PORT");
  if (!(timeout_seconds > 0)) return UsageError(cmd, "--timeout must be > 0");
  GenerateRequestSpec spec;
  if (absl::Status s = ResolveGenerateFlags(flags, gen, &spec); !s.ok()) {
    return UsageError(cmd, std::string(s.message()));
  }
  v1::GenerateRequest request;
  for (const std::string& path : gen.slots) {
    absl::StatusOr<v1::ContextPart> part = SlotsFileContext(path);
    if (!part.ok()) return Failure(cmd, part.status());
    *request.add_context() = *std::move(part);
  }
  FillGenerateRequest(spec, &request);
  client.timeout = absl::Seconds(timeout_seconds);
  absl::StatusOr<DecoderClient> decoder = DecoderClient::Create(client);
  if (!decoder.ok()) {
    return decoder.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError(cmd, std::string(decoder.status().message()))
               : Failure(cmd, decoder.status());
  }
  absl::StatusOr<StreamedAnswer> answer = StreamAnswer(*decoder, request, gen.print_ids);
  if (!answer.ok()) return Failure(cmd, answer.status());
  std::cerr << DescribeFinish(answer->last) << "\n";
  return kExitOk;
}

}  // namespace icae::cli
