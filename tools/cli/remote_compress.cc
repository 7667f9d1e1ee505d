#include "tools/cli/remote_compress.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/client/encoder_client.h"
#include "common/io/slots_file.h"
#include "tools/cli/input_text.h"

namespace icae::cli {
namespace {

// The response's slots as a file, after checking what the server sent.
absl::StatusOr<SlotsFile> ToSlotsFile(const v1::CompressedSpan& span) {
  const v1::MemorySlots& slots = span.slots();
  const v1::Tensor& tensor = slots.slots();
  SlotsFile file;
  switch (tensor.dtype()) {
    case v1::FLOAT32:
      file.dtype = DType::kFloat32;
      break;
    case v1::BFLOAT16:
      file.dtype = DType::kBFloat16;
      break;
    case v1::FLOAT16:
      file.dtype = DType::kFloat16;
      break;
    default:
      return absl::DataLossError("the encoder sent slots of a non-float dtype");
  }
  file.kind = slots.kind() == v1::KV ? SlotKind::kKv : SlotKind::kEmbedding;
  uint64_t elements = 1;
  for (int64_t d : tensor.shape()) {
    if (d < 0 || d > (int64_t{1} << 40)) elements = 0;  // Refused below.
    elements *= static_cast<uint64_t>(std::max<int64_t>(d, 0));
  }
  if (tensor.shape_size() != (file.kind == SlotKind::kKv ? 5 : 2) || elements == 0 ||
      elements * ItemSize(file.dtype) != tensor.data().size()) {
    return absl::DataLossError("the encoder sent a slots tensor whose shape and bytes disagree");
  }
  file.shape.assign(tensor.shape().begin(), tensor.shape().end());
  file.data = tensor.data();
  file.encoder_id = slots.encoder_id();
  file.source_tokens = slots.source_tokens();
  file.num_segments = slots.num_segments();
  file.mem_size = slots.mem_size();
  return file;
}

}  // namespace

absl::StatusOr<v1::DataType> SlotWireDType(const std::string& name) {
  if (name.empty()) return v1::DATA_TYPE_UNSPECIFIED;
  if (name == "float32") return v1::FLOAT32;
  if (name == "bfloat16") return v1::BFLOAT16;
  if (name == "float16") return v1::FLOAT16;
  return absl::InvalidArgumentError(
      absl::StrCat("--slot-dtype '", name, "': expected float32, bfloat16 or float16"));
}

bool HasEncoderFlag(const Args& args) {
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (arg == "--encoder" || absl::StartsWith(arg, "--encoder=")) return true;
  }
  return false;
}

int RunRemoteCompress(const Args& args) {
  const std::string cmd = "compress";
  FlagSet flags(
      "icae compress --encoder HOST:PORT [HOST:PORT ...] (--token-ids IDS | --text STR | "
      "--file F) --out F [options]");
  ClientOptions client;
  flags.StringList("encoder", &client.addresses,
                   "encoder address(es) HOST:PORT (several: round-robin), or a dns:/// target");
  SpanInput input;
  RegisterSpanFlags(flags, &input);
  std::string out, slot_dtype;
  bool bypass_cache = false;
  double timeout_seconds = 60;
  flags.String("out", &out, "output safetensors file with `slots` [n_slots, hidden]");
  flags.String("slot_dtype", &slot_dtype,
               "float32, bfloat16 or float16 (default: the server's compute dtype)");
  flags.Bool("bypass_cache", &bypass_cache, "ask the server not to use its slot cache");
  flags.Double("timeout", &timeout_seconds, "call deadline, seconds");
  flags.Bool("tls", &client.tls, "connect with TLS (implied by the --tls-* files)");
  flags.String("tls_ca", &client.tls_ca_file, "PEM CA bundle to verify the server");
  flags.String("tls_cert", &client.tls_cert_file, "PEM client certificate (mutual TLS)");
  flags.String("tls_key", &client.tls_key_file, "PEM client key (mutual TLS)");
  flags.String("tls_server_name", &client.tls_server_name, "name expected in the certificate");
  flags.String("auth_token_file", &client.auth_token_file, "file holding the bearer token");
  int code = kExitOk;
  if (!ParseCommandFlags(flags, cmd, args, &code)) return code;
  if (absl::Status s = ValidateSpanInput(flags, input); !s.ok()) {
    return UsageError(cmd, std::string(s.message()));
  }
  if (out.empty()) return UsageError(cmd, "--out is required");
  if (client.addresses.empty()) return UsageError(cmd, "--encoder needs HOST:PORT");
  if (!(timeout_seconds > 0)) return UsageError(cmd, "--timeout must be > 0");
  absl::StatusOr<v1::DataType> dtype = SlotWireDType(slot_dtype);
  if (!dtype.ok()) return UsageError(cmd, std::string(dtype.status().message()));

  std::vector<int> ids;
  std::string text;
  bool is_text = false;
  if (absl::Status s = ReadSpan(flags, input, &ids, &text, &is_text); !s.ok()) {
    return s.code() == absl::StatusCode::kInvalidArgument
               ? UsageError(cmd, std::string(s.message()))
               : Failure(cmd, s);
  }
  v1::CompressRequest request;
  request.set_slot_dtype(*dtype);
  request.set_bypass_cache(bypass_cache);
  v1::Span* span = request.add_spans();
  if (is_text) {
    span->set_text(text);  // the server tokenizes with BOS, as the offline command does
  } else {
    span->mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  }

  client.timeout = absl::Seconds(timeout_seconds);
  client.max_attempts = 3;
  absl::StatusOr<EncoderClient> encoder = EncoderClient::Create(client);
  if (!encoder.ok()) {
    return encoder.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError(cmd, std::string(encoder.status().message()))
               : Failure(cmd, encoder.status());
  }
  absl::StatusOr<v1::CompressResponse> response = encoder->Compress(request);
  if (!response.ok()) return Failure(cmd, response.status());
  if (response->spans_size() != 1) {
    return Failure(cmd, absl::DataLossError("the encoder did not return one span"));
  }
  absl::StatusOr<SlotsFile> file = ToSlotsFile(response->spans(0));
  if (!file.ok()) return Failure(cmd, file.status());
  if (absl::Status s = WriteSlotsFile(out, *file); !s.ok()) return Failure(cmd, s);
  std::cerr << "compressed " << file->source_tokens << " tokens into " << file->num_slots()
            << " slots (" << file->num_segments << " segments"
            << (response->spans(0).usage().cache_hit() ? ", cached" : "") << ") as "
            << DTypeName(file->dtype) << " via " << encoder->connection().target() << "\n";
  return kExitOk;
}

}  // namespace icae::cli
