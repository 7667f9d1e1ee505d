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

namespace icae {
class Compressor;
}  // namespace icae

namespace icae::encoder {

// Device, compute dtype and intra-op threads, as the --device/--dtype/--threads flags spell them.
struct EncoderRuntimeOptions {
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;  // 0 = every core
};

struct EncoderModel {
  std::shared_ptr<const Compressor> compressor;
  // Null when the model directory has no tokenizer.model (then only token ids are accepted).
  std::shared_ptr<const Tokenizer> tokenizer;
  EngineModelInfo info;
};

// InvalidArgument for an unknown device or dtype; FailedPrecondition for CUDA on a build or
// machine without it. Cheap: call it before starting the server.
absl::Status CheckRuntimeOptions(const EncoderRuntimeOptions& options);

// Sets the calling thread's LibTorch intra-op thread count (0 = every core). LibTorch's OpenMP
// setting is per thread, so every thread that runs the model calls this first.
void ConfigureModelThreads(int threads);

// Loads everything; errors name the file. A tokenizer whose vocabulary does not fit the model's
// is InvalidArgument.
absl::StatusOr<EncoderModel> LoadEncoderModel(const std::string& model_dir,
                                              const std::string& adapter_path,
                                              const EncoderRuntimeOptions& options);

}  // namespace icae::encoder

#endif  // ICAE_ENCODER_SERVICE_ENGINE_MODEL_LOADER_H_
