// What the training loop needs from a kind of training (lm, pretrain, finetune): its trainable
// float32 master tensors, a loss per micro-batch drawn from its own data, validation, the data
// position / RNG state for exact resume, and the final artefact.
#ifndef ICAE_TOOLS_TRAIN_TRAIN_TASK_H_
#define ICAE_TOOLS_TRAIN_TRAIN_TASK_H_

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace icae::train {

struct MicroBatchLoss {
  at::Tensor loss;     // Scalar float32 with a graph back to the parameters.
  int64_t tokens = 0;  // Positions processed (forward), for tokens/s.
};

// Named validation figures; the first is the one the progress log calls "loss".
using Metrics = std::vector<std::pair<std::string, double>>;

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  // Trainable float32 leaves (requires_grad), in a fixed order.
  virtual std::vector<at::Tensor> Parameters() const = 0;
  // Learning-rate multipliers, one per Parameters() entry (empty: all 1).
  virtual std::vector<double> LearningRateScales() const { return {}; }
  // Draws the next micro-batch (advancing the data position) and returns its mean loss.
  virtual absl::StatusOr<MicroBatchLoss> NextLoss() = 0;
  // Validation on the fixed held-out set (called without gradients).
  virtual absl::StatusOr<Metrics> Validate() = 0;
  // Data position and RNG state, and their restoration.
  virtual nlohmann::json DataState() const = 0;
  virtual absl::Status RestoreDataState(const nlohmann::json& state) = 0;
  // Writes the trained model / adapter to `dir`.
  virtual absl::Status Export(const std::string& dir) const = 0;
  // Settings a checkpoint must share with the run resuming it (model shape, data, ...).
  virtual std::string Recipe() const = 0;
  // Forward + backward FLOPs of one micro-batch (matrix products and attention), for the
  // throughput report.
  virtual double FlopsPerMicroBatch() const = 0;
};

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_TRAIN_TASK_H_
