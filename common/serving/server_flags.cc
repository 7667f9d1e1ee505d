#include "common/serving/server_flags.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/serving/file_util.h"

namespace icae {
namespace {

absl::Status FlagError(absl::string_view flag, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", problem));
}

absl::Status CheckReadableFile(absl::string_view flag, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return FlagError(flag, absl::StrCat("'", path, "' not found"));
  if (!S_ISREG(st.st_mode)) return FlagError(flag, absl::StrCat("'", path, "' is not a file"));
  if (::access(path.c_str(), R_OK) != 0) {
    return FlagError(flag, absl::StrCat("'", path, "' is not readable"));
  }
  return absl::OkStatus();
}


}  // namespace

void RegisterServerFlags(FlagSet& flags, absl::string_view default_listen,
                         absl::string_view default_metrics_listen, ServerFlags* out) {
  out->listen = std::string(default_listen);
  out->metrics_listen = std::string(default_metrics_listen);
  flags.String("model", &out->model, "HF model directory (config.json, safetensors, tokenizer)");
  flags.String("adapter", &out->adapter,
               "ICAE adapter file or directory, or a cross-encoder package (the encoder then "
               "runs the package's small model; --model may name it or the decoder's base)");
  flags.String("listen", &out->listen, "gRPC HOST:PORT (port 0 picks a free port)");
  flags.String("metrics_listen", &out->metrics_listen,
               "Prometheus HTTP HOST:PORT, path /metrics; empty disables");
  flags.String("device", &out->runtime.device, "cpu | cuda | cuda:N");
  flags.String("dtype", &out->runtime.dtype, "compute dtype: float32 | bfloat16");
  flags.Int("threads", &out->runtime.threads, "LibTorch intra-op threads (0 = all cores)");
  flags.Int64("max_message_bytes", &out->max_message_bytes,
              "gRPC max receive and send message size, bytes");
  flags.Double("drain_seconds", &out->drain_seconds,
               "on SIGTERM/SIGINT: seconds to finish in-flight work, then exit 0");
  flags.String("tls_cert", &out->tls_cert, "PEM certificate chain (with --tls_key: serve TLS)");
  flags.String("tls_key", &out->tls_key, "PEM private key of --tls_cert");
  flags.String("tls_client_ca", &out->tls_client_ca,
               "PEM CA bundle: require client certificates signed by it (mTLS)");
  flags.String("auth_token_file", &out->auth_token_file,
               "require 'authorization: Bearer <token>' with the token in this file");
  flags.String("reflection", &out->reflection,
               "server reflection: auto (only without --auth_token_file), on (to anyone), off");
}

bool ReflectionEnabled(const ServerFlags& flags) {
  if (flags.reflection == "on") return true;
  if (flags.reflection == "off") return false;
  return flags.auth_token_file.empty();
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view flag) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) {
    return FlagError(flag, absl::StrCat("'", text, "' is not HOST:PORT"));
  }
  absl::string_view host = text.substr(0, colon);
  absl::string_view port_text = text.substr(colon + 1);
  if (absl::StartsWith(host, "[")) {
    if (!absl::EndsWith(host, "]") || host.size() < 3) {
      return FlagError(flag, absl::StrCat("'", text, "': unbalanced brackets"));
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return FlagError(flag, absl::StrCat("'", text, "': put an IPv6 host in brackets, [::]:PORT"));
  }
  if (host.empty()) return FlagError(flag, absl::StrCat("'", text, "': empty host"));
  HostPort out;
  out.host = std::string(host);
  if (port_text.empty() || !absl::ascii_isdigit(port_text[0]) ||
      !absl::SimpleAtoi(port_text, &out.port) || out.port < 0 || out.port > 65535) {
    return FlagError(flag, absl::StrCat("'", text, "': port must be 0..65535"));
  }
  return out;
}

absl::Status ValidateTransportFlags(const ServerFlags& flags) {
  ASSIGN_OR_RETURN(HostPort listen, ParseHostPort(flags.listen, "listen"));
  if (!flags.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(HostPort metrics, ParseHostPort(flags.metrics_listen, "metrics_listen"));
    if (metrics.port != 0 && metrics.port == listen.port) {
      return FlagError("metrics_listen",
                       absl::StrCat("port ", metrics.port, " is also --listen's"));
    }
  }
  if (flags.max_message_bytes <= 0 || flags.max_message_bytes > INT_MAX) {
    return FlagError("max_message_bytes",
                     absl::StrCat(flags.max_message_bytes, " is not in 1..", INT_MAX));
  }
  if (!(flags.drain_seconds >= 0) || !std::isfinite(flags.drain_seconds)) {
    return FlagError("drain_seconds", absl::StrCat(flags.drain_seconds, " is not >= 0"));
  }
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return FlagError(flags.tls_cert.empty() ? "tls_cert" : "tls_key",
                     "--tls_cert and --tls_key must be given together");
  }
  if (!flags.tls_cert.empty()) {
    RETURN_IF_ERROR(CheckReadableFile("tls_cert", flags.tls_cert));
    RETURN_IF_ERROR(CheckReadableFile("tls_key", flags.tls_key));
  }
  if (!flags.tls_client_ca.empty()) {
    if (flags.tls_cert.empty()) {
      return FlagError("tls_client_ca", "needs TLS (--tls_cert and --tls_key)");
    }
    RETURN_IF_ERROR(CheckReadableFile("tls_client_ca", flags.tls_client_ca));
  }
  if (!flags.auth_token_file.empty()) {
    RETURN_IF_ERROR(CheckReadableFile("auth_token_file", flags.auth_token_file));
    ASSIGN_OR_RETURN(std::string token, ReadTokenFile(flags.auth_token_file));
    (void)token;
  }
  if (flags.reflection != "auto" && flags.reflection != "on" && flags.reflection != "off") {
    return FlagError("reflection", "expected auto, on or off");
  }
  return absl::OkStatus();
}

absl::Status ValidateServerFlags(const ServerFlags& flags) {
  if (flags.model.empty()) return FlagError("model", "required");
  struct stat st;
  if (::stat(flags.model.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return FlagError("model", absl::StrCat("'", flags.model, "' is not a directory"));
  }
  if (flags.adapter.empty()) return FlagError("adapter", "required");
  if (::stat(flags.adapter.c_str(), &st) != 0) {
    return FlagError("adapter", absl::StrCat("'", flags.adapter, "' not found"));
  }
  RETURN_IF_ERROR(flags.runtime.Validate());
  return ValidateTransportFlags(flags);
}

}  // namespace icae
