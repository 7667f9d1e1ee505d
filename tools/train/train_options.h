// Options every icae-train subcommand shares: optimisation, schedule, precision, checkpoints,
// validation and logging. Model and data flags belong to each subcommand.
#ifndef ICAE_TOOLS_TRAIN_TRAIN_OPTIONS_H_
#define ICAE_TOOLS_TRAIN_TRAIN_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/base/flags.h"
#include "common/base/runtime_options.h"

namespace icae::train {

struct TrainOptions {
  std::string out;             // Final artefact: HF model directory or adapter directory.
  std::string checkpoint_dir;  // Default: <out>.ckpt
  int steps = 1000;            // Optimizer steps in the whole run.
  int batch = 8;               // Sequences per micro-batch.
  int accum = 1;               // Micro-batches per optimizer step.
  double lr = 3e-4;            // Peak learning rate.
  double min_lr_ratio = 0.1;   // The cosine ends at lr * min_lr_ratio.
  int warmup = 100;            // Linear warm-up steps.
  double weight_decay = 0.0;   // AdamW decoupled decay, on matrices only.
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double clip = 2.0;              // Global gradient-norm clip (0 = off).
  std::string dtype = "float32";  // Compute dtype; master weights and optimizer stay float32.
  // Whether `dtype` names bfloat16 (RuntimeOptions spelling: "bfloat16" or "bf16").
  bool bfloat16() const { return RuntimeOptions{"cpu", dtype, 0}.CanonicalDtype() == "bfloat16"; }
  int threads = 2;
  int64_t seed = 1234;
  int checkpoint_every = 200;   // Steps between checkpoints (0 = only at the end).
  int eval_every = 200;         // Steps between validation passes (0 = only at the end).
  int log_every = 10;           // Plain progress lines in a log (the terminal redraws every step).
  int stop_at = 0;              // Stop (with a checkpoint) after this step; 0 = run to the end.
  bool export_partial = false;  // When stopped early, also export to <out>.step-NNNNNNN.
  bool fresh = false;           // Ignore an existing checkpoint (it is replaced at the next save).
  bool gemm_baseline = true;    // Time a GEMM at start for the FLOP fraction.

  std::string CheckpointDir() const;
  // The settings a checkpoint must share with the run that resumes it.
  std::string Recipe() const;
};

void RegisterTrainFlags(FlagSet& flags, TrainOptions* options);
// InvalidArgument naming the flag.
absl::Status ValidateTrainOptions(const TrainOptions& options);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_TRAIN_OPTIONS_H_
