// Flags shared by the offline commands that load a model.
#ifndef ICAE_TOOLS_CLI_MODEL_FLAGS_H_
#define ICAE_TOOLS_CLI_MODEL_FLAGS_H_

#include <string>

#include "common/base/flags.h"
#include "common/model/runtime_options.h"

namespace icae::cli {

struct ModelFlags {
  std::string model;
  std::string adapter;
  RuntimeOptions runtime;
};

// --model, --adapter (when `with_adapter`), --device, --dtype, --threads.
void RegisterModelFlags(FlagSet& flags, ModelFlags* out, bool with_adapter);

// Resolves the runtime options and sets the thread count; prints and returns an exit code
// (0 = go on).
int PrepareRuntime(const std::string& command, const ModelFlags& flags, Runtime* runtime);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_MODEL_FLAGS_H_
