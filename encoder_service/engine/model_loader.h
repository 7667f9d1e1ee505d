// Loading the encoder's model for the engine: the Compressor (base model + merged LoRA + memory
// embeddings), the optional tokenizer, and the facts GetInfo reports. This header keeps LibTorch
// out of its users (the server and main): the Compressor is only forward-declared.
#ifndef ICAE_ENCODER_SERVICE_ENGINE_MODEL_LOADER_H_
#define ICAE_ENCODER_SERVICE_ENGINE_MODEL_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/io/tokenizer.h"
#include "encoder_service/engine/engine_types.h"
#include "common/base/runtime_options.h"

namespace icae {
class Compressor;
}  // namespace icae

namespace icae::encoder {

struct EncoderModel {
  std::shared_ptr<const Compressor> compressor;
  // Null when the model directory has no tokenizer.model (then only token ids are accepted).
  std::shared_ptr<const Tokenizer> tokenizer;
  EngineModelInfo info;
};

// ResolveRuntime's answer without LibTorch in the caller: InvalidArgument for a malformed
// option, FailedPrecondition for CUDA on a build or machine without it. Call before serving.
absl::Status CheckRuntimeOptions(const RuntimeOptions& options);

// ConfigureThreads (common/model) for callers without LibTorch: the calling thread's intra-op
// thread count (0 = every core). LibTorch's OpenMP setting is per thread, so every thread that
// runs the model calls this first.
void ConfigureModelThreads(int threads);

// Loads everything; errors name the file. A tokenizer whose vocabulary does not fit the model's
// is InvalidArgument.
absl::StatusOr<EncoderModel> LoadEncoderModel(const std::string& model_dir,
                                              const std::string& adapter_path,
                                              const RuntimeOptions& options);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_MODEL_LOADER_H_
