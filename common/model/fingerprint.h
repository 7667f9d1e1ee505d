// Model fingerprints: the encoder_id that ties slots to the exact base model and adapter that
// produced them. Stable across replicas and restarts: it depends only on file contents.
#ifndef ICAE_COMMON_MODEL_FINGERPRINT_H_
#define ICAE_COMMON_MODEL_FINGERPRINT_H_

#include <string>

#include "absl/status/statusor.h"

namespace icae {

// sha256 over config.json and every safetensors header of the model directory (shards in name
// order). Headers hold names, dtypes, shapes and offsets; hashing them (not the gigabytes of
// weights) keeps start-up fast while any re-export or different checkpoint changes the id.
absl::StatusOr<std::string> BaseModelFingerprint(const std::string& model_dir);

// encoder_id = sha256(base fingerprint, adapter fingerprint), 64 hex digits.
std::string EncoderId(const std::string& base_fingerprint, const std::string& adapter_fingerprint);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_FINGERPRINT_H_
