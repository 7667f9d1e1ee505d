// The training loop shared by every icae-train subcommand: gradient accumulation, global-norm
// clipping, AdamW with warm-up + cosine, periodic validation and checkpoints, exact resume from the
// newest checkpoint, the progress line, and the final export.
#ifndef ICAE_TOOLS_TRAIN_TRAINER_H_
#define ICAE_TOOLS_TRAIN_TRAINER_H_

#include <cstdio>

#include "absl/status/statusor.h"
#include "tools/train/train_options.h"
#include "tools/train/train_task.h"

namespace icae::train {

struct TrainResult {
  int64_t steps_done = 0;  // Optimizer steps completed in total (resumed ones included).
  bool finished = false;   // True when the run reached --steps (and exported).
  Metrics validation;      // The last validation figures.
  double tokens_per_second = 0;
  double model_gflops = 0;  // Achieved forward+backward GFLOP/s of this process's steps.
  double gemm_gflops = 0;   // Same-run GEMM baseline (0 when not measured).
};

// Runs `task` under `options`, printing progress to `log` (redrawn when it is a terminal).
absl::StatusOr<TrainResult> RunTraining(TrainTask& task, const TrainOptions& options, FILE* log);

// GFLOP/s of an [m, k] x [k, n] matrix product in `dtype`, timed for about `seconds`.
double MeasureGemmGflops(int64_t m, int64_t k, int64_t n, at::ScalarType dtype, double seconds);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_TRAINER_H_
