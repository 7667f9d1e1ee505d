// AdamW (decoupled weight decay, bias-corrected moments) over float32 master tensors, the
// warm-up + cosine learning-rate schedule and global gradient-norm clipping. Deterministic: the
// same gradients give bit-identical updates. Not thread-safe.
#ifndef ICAE_TOOLS_TRAIN_OPTIMIZER_H_
#define ICAE_TOOLS_TRAIN_OPTIMIZER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace icae::train {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Applied to tensors with dim() >= 2 only.
};

class AdamW {
 public:
  // `params`: float32 leaves with requires_grad; their .grad() is read at Step().
  AdamW(std::vector<at::Tensor> params, AdamWConfig config);

  // Per-parameter multipliers of the learning rate, in parameter order (empty: all 1).
  void SetLearningRateScales(std::vector<double> scales) { scales_ = std::move(scales); }

  // One update with learning rate `lr`; parameters without a gradient are skipped.
  void Step(double lr);
  void ZeroGrad();

  int64_t step() const { return step_; }
  // Moments, in parameter order: [m..., v...] (for checkpoints).
  std::vector<at::Tensor> State() const;
  // Restores moments (shapes must match) and the step count.
  void LoadState(const std::vector<at::Tensor>& state, int64_t step);

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> m_;  // First moments, like params.
  std::vector<at::Tensor> v_;  // Second moments.
  AdamWConfig config_;
  std::vector<double> scales_;
  int64_t step_ = 0;
};

// Linear warm-up from 0 over `warmup` steps, then cosine from `peak` down to `peak * min_ratio`
// at `total` steps. `step` counts from 0.
double LearningRate(int64_t step, int64_t total, int64_t warmup, double peak, double min_ratio);

// Scales all gradients so that their global L2 norm is at most `max_norm` (when > 0); returns
// the norm before clipping.
double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_OPTIMIZER_H_
