#include "tools/cli/model_flags.h"

#include "tools/cli/cli.h"

namespace icae::cli {

void RegisterModelFlags(FlagSet& flags, ModelFlags* out, bool with_adapter) {
  flags.String("model", &out->model, "HF model directory (config.json, safetensors)");
  if (with_adapter) {
    flags.String("adapter", &out->adapter,
                 "ICAE adapter: a .safetensors file or a directory holding one");
  }
  flags.String("device", &out->runtime.device, "cpu, cuda or cuda:N");
  flags.String("dtype", &out->runtime.dtype, "compute dtype: float32 or bfloat16");
  flags.Int("threads", &out->runtime.threads, "intra-op threads (0 = every core)");
}

int PrepareRuntime(const std::string& command, const ModelFlags& flags, Runtime* runtime) {
  if (flags.model.empty()) return UsageError(command, "--model is required");
  absl::StatusOr<Runtime> resolved = ResolveRuntime(flags.runtime);
  if (!resolved.ok()) {
    if (resolved.status().code() == absl::StatusCode::kInvalidArgument) {
      return UsageError(command, std::string(resolved.status().message()));
    }
    return Failure(command, resolved.status());
  }
  *runtime = *resolved;
  ConfigureThreads(flags.runtime.threads);
  return kExitOk;
}

}  // namespace icae::cli
