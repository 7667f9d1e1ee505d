// `icae generate --decoder HOST:PORT ...`: the generate command against a running decoder
// service, and the pieces `icae ask` shares with it. No LibTorch.
#ifndef ICAE_TOOLS_CLI_REMOTE_GENERATE_H_
#define ICAE_TOOLS_CLI_REMOTE_GENERATE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/flags.h"
#include "common/client/client_options.h"
#include "common/client/decoder_client.h"
#include "icae/v1/decoder.pb.h"
#include "tools/cli/cli.h"
#include "tools/cli/generate_flags.h"

namespace icae::cli {

// True when `args` hold --decoder (then the generate command runs remotely).
bool HasDecoderFlag(const Args& args);

// icae generate --decoder HOST:PORT [HOST:PORT ...] [--slots FILE ...] [--template NAME]
//               [--prompt STR | --prompt-ids IDS] [--max-new-tokens N] [--temperature T
//               --top-p P --top-k K --seed S] [--stop STR ...] [--print-ids] [--timeout S]
//               [--tls --tls-ca F --tls-cert F --tls-key F --tls-server-name N]
//               [--auth-token-file F]
// Streams the text to stdout as tokens arrive (or prints the ids with --print-ids); the finish
// reason and usage go to stderr.
int RunRemoteGenerate(const Args& args);

// --timeout, --tls*, --auth-token-file bound to `options` / `timeout_seconds`.
void RegisterClientFlags(FlagSet& flags, ClientOptions* options, double* timeout_seconds);

// `shared` (the TLS, token and timeout flags, which apply to both services) with `addresses`.
ClientOptions WithAddresses(ClientOptions shared, std::vector<std::string> addresses);

// A slots file (icae compress) as a request's context part; keeps its wire dtype.
absl::StatusOr<v1::ContextPart> SlotsFileContext(const std::string& path);

// Template, prompt, sampling, limits and stop strings of `spec` into `request`.
void FillGenerateRequest(const GenerateRequestSpec& spec, v1::GenerateRequest* request);

struct StreamedAnswer {
  v1::GenerateChunk last;      // finish_reason and usage
  std::vector<int> ids;        // every generated id
  absl::Duration first_chunk;  // call start to the first chunk
  absl::Duration total;        // call start to the end
};

// GenerateStream, writing text deltas to stdout as they arrive (nothing when `print_ids`; then,
// or when the server sent no text at all, the ids are printed at the end).
absl::StatusOr<StreamedAnswer> StreamAnswer(const DecoderClient& decoder,
                                            const v1::GenerateRequest& request, bool print_ids);

// "finish_reason=length generated=12 slots=16 prompt_tokens=9 ..." for stderr.
std::string DescribeFinish(const v1::GenerateChunk& last);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_REMOTE_GENERATE_H_
