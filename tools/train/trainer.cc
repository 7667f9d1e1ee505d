#include "tools/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/model/torch_status.h"
#include "tools/train/optimizer.h"
#include "tools/train/progress.h"
#include "tools/train/train_checkpoint.h"

namespace icae::train {
namespace {

std::string FormatMetrics(const Metrics& metrics) {
  std::string out;
  for (const auto& [name, value] : metrics) absl::StrAppendFormat(&out, "  %s %.4f", name, value);
  return out;
}

}  // namespace

double MeasureGemmGflops(int64_t m, int64_t k, int64_t n, at::ScalarType dtype, double seconds) {
  at::NoGradGuard no_grad;
  at::Tensor a = at::randn({m, k}).to(dtype);
  at::Tensor b = at::randn({k, n}).to(dtype);
  at::matmul(a, b);  // Warm-up.
  int iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    at::matmul(a, b);
    ++iterations;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  return 2.0 * m * k * n * iterations / elapsed / 1e9;
}

absl::StatusOr<TrainResult> RunTraining(TrainTask& task, const TrainOptions& options, FILE* log) {
  RETURN_IF_ERROR(ValidateTrainOptions(options));
  const std::string recipe = absl::StrCat(options.Recipe(), " | ", task.Recipe());
  std::vector<at::Tensor> params = task.Parameters();
  AdamW optimizer(params,
                  AdamWConfig{options.beta1, options.beta2, options.eps, options.weight_decay});
  optimizer.SetLearningRateScales(task.LearningRateScales());
  Progress progress(log, ::isatty(::fileno(log)) == 1, options.steps, options.log_every);
  TrainResult result;
  int64_t step = 0;
  double tokens_seen = 0;
  const std::string ckpt_dir = options.CheckpointDir();

  if (!options.fresh) {
    ASSIGN_OR_RETURN(std::optional<TrainCheckpoint> loaded, LoadTrainCheckpoint(ckpt_dir));
    if (loaded) {
      if (loaded->recipe != recipe) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the checkpoint in ", ckpt_dir, " was made with other settings:\n  checkpoint: ",
            loaded->recipe, "\n  this run:   ", recipe,
            "\n(use the same flags to resume, or --fresh to start over)"));
      }
      if (loaded->params.size() != params.size() || loaded->moments.size() != 2 * params.size()) {
        return absl::DataLossError(
            absl::StrCat("checkpoint in ", ckpt_dir, " does not match the model's parameters"));
      }
      RETURN_IF_ERROR(CatchTorch("restoring the checkpoint", [&]() -> absl::Status {
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < params.size(); ++i) {
          if (!params[i].sizes().equals(loaded->params[i].sizes())) {
            return absl::DataLossError(absl::StrCat("checkpoint tensor ", i, " has another shape"));
          }
          params[i].copy_(loaded->params[i]);
        }
        optimizer.LoadState(loaded->moments, loaded->step);
        return absl::OkStatus();
      }));
      RETURN_IF_ERROR(task.RestoreDataState(loaded->data_state));
      step = loaded->step;
      tokens_seen = loaded->tokens_seen;
      progress.Event(absl::StrCat("resumed from ", ckpt_dir, " at step ", step));
    }
  }

  const double flops_per_step = task.FlopsPerMicroBatch() * options.accum;
  if (options.gemm_baseline) {
    result.gemm_gflops = MeasureGemmGflops(
        512, 512, 2048, options.bfloat16() ? at::kBFloat16 : at::kFloat, 0.5);
    progress.Event(
        absl::StrFormat("model: %.3f GFLOP per optimizer step (forward+backward); same-run %s GEMM "
                        "[512x512]x[512x2048]: %.1f GFLOP/s",
                        flops_per_step / 1e9, options.dtype, result.gemm_gflops));
  }

  auto save = [&]() -> absl::Status {
    TrainCheckpoint c;
    c.step = step;
    c.recipe = recipe;
    c.params = params;
    c.moments = optimizer.State();
    c.data_state = task.DataState();
    c.tokens_seen = tokens_seen;
    RETURN_IF_ERROR(SaveTrainCheckpoint(ckpt_dir, c));
    progress.Event(absl::StrCat("checkpoint: step ", step, " -> ", ckpt_dir));
    return absl::OkStatus();
  };
  auto validate = [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    ASSIGN_OR_RETURN(result.validation, task.Validate());
    progress.Event(
        absl::StrCat("validation at step ", step, ":", FormatMetrics(result.validation)));
    return absl::OkStatus();
  };

  progress.Restart(step);
  const int64_t first_step = step;
  const int64_t end =
      options.stop_at > 0 ? std::min<int64_t>(options.stop_at, options.steps) : options.steps;
  while (step < end) {
    double loss_sum = 0;
    int64_t tokens = 0;
    RETURN_IF_ERROR(CatchTorch("training step", [&]() -> absl::Status {
      for (int micro = 0; micro < options.accum; ++micro) {
        ASSIGN_OR_RETURN(MicroBatchLoss mb, task.NextLoss());
        (mb.loss / options.accum).backward();
        loss_sum += mb.loss.item<double>();
        tokens += mb.tokens;
      }
      ClipGradNorm(params, options.clip);
      const double lr =
          LearningRate(step, options.steps, options.warmup, options.lr, options.min_lr_ratio);
      optimizer.Step(lr);
      optimizer.ZeroGrad();
      ++step;
      tokens_seen += tokens;
      const double loss = loss_sum / options.accum;
      if (!std::isfinite(loss)) {
        return absl::InternalError(absl::StrCat("the loss is ", loss, " at step ", step,
                                                " (diverged; lower --lr or use float32)"));
      }
      progress.Step(step, loss, lr, tokens);
      return absl::OkStatus();
    }));
    const bool last = step == end;
    if (options.eval_every > 0 && step % options.eval_every == 0 && !last) {
      RETURN_IF_ERROR(validate());
    }
    if (options.checkpoint_every > 0 && step % options.checkpoint_every == 0 && !last) {
      RETURN_IF_ERROR(save());
    }
  }
  if (step > first_step) RETURN_IF_ERROR(save());  // A checkpoint for the state we stop in.
  result.steps_done = step;
  const double seconds = progress.ElapsedSeconds();
  result.tokens_per_second = progress.TokensPerSecond();
  result.model_gflops = seconds > 0 ? flops_per_step * (step - first_step) / seconds / 1e9 : 0;
  if (step > first_step) {
    std::string line = absl::StrFormat("throughput: %.0f tokens/s, %.2f GFLOP/s (model FLOPs)",
                                       result.tokens_per_second, result.model_gflops);
    if (result.gemm_gflops > 0) {
      absl::StrAppendFormat(&line, " = %.1f%% of the same-run GEMM %.1f GFLOP/s",
                            100.0 * result.model_gflops / result.gemm_gflops, result.gemm_gflops);
    }
    progress.Event(line);
  }
  const bool finished = step >= options.steps;
  if (finished || options.export_partial) {
    // A finished run writes --out; a stopped one with --export-partial writes
    // <out>.step-NNNNNNN beside it, so a run cut short can be evaluated without being taken for
    // the finished artefact.
    const std::string dir =
        finished ? options.out : absl::StrFormat("%s.step-%07d", options.out, step);
    RETURN_IF_ERROR(validate());
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", dir, ": ", error.message()));
    }
    RETURN_IF_ERROR(task.Export(dir));
    progress.Event(absl::StrCat("wrote ", dir));
    result.finished = finished;
  }
  return result;
}

}  // namespace icae::train
