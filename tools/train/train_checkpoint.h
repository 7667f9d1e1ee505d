// Training checkpoints: everything needed to continue bit-identically — master weights, AdamW
// moments and step, the data position and RNG state — in <dir>/step-NNNNNNN/{tensors.safetensors,
// state.json}, with <dir>/LATEST naming the newest complete one. A checkpoint is written in full
// before LATEST moves to it (atomic rename) and older ones are removed only after that, so an
// interrupted save or a failed run never loses a finished checkpoint.
#ifndef ICAE_TOOLS_TRAIN_TRAIN_CHECKPOINT_H_
#define ICAE_TOOLS_TRAIN_TRAIN_CHECKPOINT_H_

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace icae::train {

struct TrainCheckpoint {
  int64_t step = 0;                 // Optimizer steps done.
  std::string recipe;               // Must equal the resuming run's.
  std::vector<at::Tensor> params;   // float32, task order.
  std::vector<at::Tensor> moments;  // AdamW [m..., v...].
  nlohmann::json data_state;
  double tokens_seen = 0;
};

absl::Status SaveTrainCheckpoint(const std::string& dir, const TrainCheckpoint& checkpoint);
// nullopt when `dir` has no LATEST; an error when LATEST names a damaged checkpoint.
absl::StatusOr<std::optional<TrainCheckpoint>> LoadTrainCheckpoint(const std::string& dir);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_TRAIN_CHECKPOINT_H_
