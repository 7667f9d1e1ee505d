#include "tools/train/commands.h"

#include <cstdio>

#include "common/base/flags.h"
#include "common/model/runtime_options.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/lm_task.h"
#include "tools/train/probe.h"
#include "tools/train/rescale.h"
#include "tools/train/trainer.h"

namespace icae::train {
namespace {

// Parses flags; returns -1 to go on, else the exit code.
int Parse(FlagSet& flags, const std::string& cmd, const std::vector<std::string>& args) {
  absl::Status status = flags.Parse(args);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "icae-train %s: %s\n", cmd.c_str(), std::string(status.message()).c_str());
    return 2;
  }
  return -1;
}

int Fail(const std::string& cmd, const absl::Status& status) {
  std::fprintf(stderr, "icae-train %s: %s\n", cmd.c_str(), status.ToString().c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

int Train(const std::string& cmd, absl::StatusOr<std::unique_ptr<TrainTask>> task,
          const TrainOptions& train) {
  if (!task.ok()) return Fail(cmd, task.status());
  absl::StatusOr<TrainResult> result = RunTraining(**task, train, stderr);
  if (!result.ok()) {
    // A failure never touches the checkpoints already written.
    std::fprintf(stderr, "icae-train %s: %s\n", cmd.c_str(), result.status().ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int RunLm(const std::vector<std::string>& args) {
  FlagSet flags("icae-train lm --train FILE --valid FILE --tokenizer MODEL --out DIR [options]");
  TrainOptions train;
  LmOptions lm;
  RegisterTrainFlags(flags, &train);
  RegisterLmFlags(flags, &lm);
  if (int code = Parse(flags, "lm", args); code >= 0) return code;
  ConfigureThreads(train.threads);
  return Train("lm", CreateLmTask(lm, train), train);
}

namespace {

// pretrain and cross: the same task and flags; cross swaps LoRA for a cross-model encoder.
int RunPretrainTask(const std::string& cmd, const std::string& usage, bool cross,
                    const std::vector<std::string>& args) {
  FlagSet flags(usage);
  TrainOptions train;
  PretrainOptions pretrain;
  pretrain.cross = cross;
  RegisterTrainFlags(flags, &train);
  RegisterPretrainFlags(flags, &pretrain);
  if (cross) RegisterCrossFlags(flags, &pretrain.cross_options);
  if (int code = Parse(flags, cmd, args); code >= 0) return code;
  pretrain.rate_given = flags.IsSet("rate");
  pretrain.mem_size_given = flags.IsSet("mem-size");
  pretrain.slot_kind_given = flags.IsSet("slot-kind");
  ConfigureThreads(train.threads);
  return Train(cmd, CreatePretrainTask(pretrain, train), train);
}

}  // namespace

int RunPretrain(const std::vector<std::string>& args) {
  return RunPretrainTask(
      "pretrain", "icae-train pretrain --model DIR --train FILE --valid FILE --out DIR [options]",
      /*cross=*/false, args);
}

int RunCross(const std::vector<std::string>& args) {
  return RunPretrainTask("cross",
                         "icae-train cross --model DECODER --train FILE --valid FILE --out DIR "
                         "[--encoder-init DIR] [options]",
                         /*cross=*/true, args);
}

int RunFinetune(const std::vector<std::string>& args) {
  FlagSet flags(
      "icae-train finetune --model DIR --train FILE.jsonl --valid FILE.jsonl --out DIR [options]");
  TrainOptions train;
  FinetuneOptions finetune;
  RegisterTrainFlags(flags, &train);
  RegisterFinetuneFlags(flags, &finetune);
  if (int code = Parse(flags, "finetune", args); code >= 0) return code;
  finetune.rate_given = flags.IsSet("rate");
  finetune.mem_size_given = flags.IsSet("mem-size");
  finetune.slot_kind_given = flags.IsSet("slot-kind");
  ConfigureThreads(train.threads);
  return Train("finetune", CreateFinetuneTask(finetune, train), train);
}

int RunProbe(const std::vector<std::string>& args) {
  FlagSet flags(
      "icae-train probe --model DIR [--adapter PATH] --file TEXT [--slots K,K,...] [options]");
  ProbeOptions probe;
  RegisterProbeFlags(flags, &probe);
  if (int code = Parse(flags, "probe", args); code >= 0) return code;
  ConfigureThreads(probe.threads);
  absl::StatusOr<ProbeResult> result = RunProbe(probe, stderr);
  if (!result.ok()) return Fail("probe", result.status());
  std::fputs(FormatProbeTable(probe, *result).c_str(), stdout);
  return 0;
}

int RunRescale(const std::vector<std::string>& args) {
  FlagSet flags("icae-train rescale --model DIR --out DIR [--factor C]");
  RescaleOptions rescale;
  RegisterRescaleFlags(flags, &rescale);
  if (int code = Parse(flags, "rescale", args); code >= 0) return code;
  absl::StatusOr<double> c = RunRescale(rescale);
  if (!c.ok()) return Fail("rescale", c.status());
  std::printf("rescaled %s by c = %g -> %s\n", rescale.model.c_str(), *c, rescale.out.c_str());
  return 0;
}

}  // namespace icae::train
