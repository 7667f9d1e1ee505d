#include "tools/train/train_options.h"

#include "absl/strings/str_cat.h"

namespace icae::train {

std::string TrainOptions::CheckpointDir() const {
  return checkpoint_dir.empty() ? absl::StrCat(out, ".ckpt") : checkpoint_dir;
}

std::string TrainOptions::Recipe() const {
  return absl::StrCat("steps=", steps, " batch=", batch, " accum=", accum, " lr=", lr,
                      " min_lr_ratio=", min_lr_ratio, " warmup=", warmup, " wd=", weight_decay,
                      " betas=", beta1, ",", beta2, " eps=", eps, " clip=", clip, " dtype=", dtype,
                      " seed=", seed);
}

void RegisterTrainFlags(FlagSet& flags, TrainOptions* o) {
  flags.String("out", &o->out, "output directory (written at the end)");
  flags.String("checkpoint-dir", &o->checkpoint_dir, "checkpoints (default: <out>.ckpt)");
  flags.Int("steps", &o->steps, "optimizer steps in the whole run");
  flags.Int("batch", &o->batch, "sequences per micro-batch");
  flags.Int("accum", &o->accum, "micro-batches accumulated per optimizer step");
  flags.Double("lr", &o->lr, "peak learning rate (AdamW)");
  flags.Double("min-lr-ratio", &o->min_lr_ratio, "final lr as a fraction of --lr (cosine)");
  flags.Int("warmup", &o->warmup, "linear warm-up steps");
  flags.Double("weight-decay", &o->weight_decay, "AdamW decoupled weight decay (matrices only)");
  flags.Double("beta1", &o->beta1, "AdamW beta1");
  flags.Double("beta2", &o->beta2, "AdamW beta2");
  flags.Double("eps", &o->eps, "AdamW epsilon");
  flags.Double("clip", &o->clip, "gradient-norm clip (0 = off)");
  flags.String("dtype", &o->dtype, "compute dtype: float32 or bfloat16 (masters stay float32)");
  flags.Int("threads", &o->threads, "intra-op threads");
  flags.Int64("seed", &o->seed, "seed for init, data order, sampling");
  flags.Int("checkpoint-every", &o->checkpoint_every, "steps between checkpoints (0 = end only)");
  flags.Int("eval-every", &o->eval_every, "steps between validation passes (0 = end only)");
  flags.Int("log-every", &o->log_every, "steps between progress lines when not on a terminal");
  flags.Int("stop-at", &o->stop_at, "stop after this step with a checkpoint (0 = run to the end)");
  flags.Bool("export-partial", &o->export_partial,
             "when stopped before the end, also export to <out>.step-NNNNNNN");
  flags.Bool("fresh", &o->fresh, "start over even if a checkpoint exists");
  flags.Bool("gemm-baseline", &o->gemm_baseline, "time a GEMM at start (FLOP fraction)");
}

absl::Status ValidateTrainOptions(const TrainOptions& o) {
  auto bad = [](const char* flag, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", why));
  };
  if (o.out.empty()) return bad("out", "is required");
  if (o.steps <= 0) return bad("steps", "must be positive");
  if (o.batch <= 0) return bad("batch", "must be positive");
  if (o.accum <= 0) return bad("accum", "must be positive");
  if (!(o.lr > 0)) return bad("lr", "must be positive");
  if (o.min_lr_ratio < 0 || o.min_lr_ratio > 1) return bad("min-lr-ratio", "must be in [0, 1]");
  if (o.warmup < 0) return bad("warmup", "must be >= 0");
  if (o.weight_decay < 0) return bad("weight-decay", "must be >= 0");
  if (o.beta1 < 0 || o.beta1 >= 1) return bad("beta1", "must be in [0, 1)");
  if (o.beta2 < 0 || o.beta2 >= 1) return bad("beta2", "must be in [0, 1)");
  if (o.clip < 0) return bad("clip", "must be >= 0");
  // The project's one parser of --dtype (RuntimeOptions): "bf16" and "fp32" too.
  if (!RuntimeOptions{"cpu", o.dtype, 0}.Validate().ok()) {
    return bad("dtype", "must be float32 or bfloat16");
  }
  if (o.threads <= 0) return bad("threads", "must be positive");
  if (o.checkpoint_every < 0) return bad("checkpoint-every", "must be >= 0");
  if (o.eval_every < 0) return bad("eval-every", "must be >= 0");
  if (o.log_every <= 0) return bad("log-every", "must be positive");
  if (o.stop_at < 0) return bad("stop-at", "must be >= 0");
  return absl::OkStatus();
}

}  // namespace icae::train
