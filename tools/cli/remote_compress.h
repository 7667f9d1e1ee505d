// `icae compress --encoder HOST:PORT ...`: the compress command against a running encoder service.
#ifndef ICAE_TOOLS_CLI_REMOTE_COMPRESS_H_
#define ICAE_TOOLS_CLI_REMOTE_COMPRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "icae/v1/tensor.pb.h"
#include "tools/cli/cli.h"

namespace icae::cli {

// --slot-dtype: "" (the server's compute dtype), float32, bfloat16 or float16.
absl::StatusOr<v1::DataType> SlotWireDType(const std::string& name);

// True when `args` hold --encoder (then the compress command runs remotely).
bool HasEncoderFlag(const Args& args);

// icae compress --encoder HOST:PORT [HOST:PORT ...] (--token-ids IDS | --text STR | --file F)
//               --out F [--slot-dtype float32|bfloat16|float16] [--bypass-cache] [--timeout S]
//               [--tls --tls-ca F --tls-cert F --tls-key F --tls-server-name N]
//               [--auth-token-file F]
// Writes the same slots file as the offline command, with the slots in their wire dtype.
int RunRemoteCompress(const Args& args);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_REMOTE_COMPRESS_H_
