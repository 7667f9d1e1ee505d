// icae-train: trains the demo models with LibTorch autograd on the project's own model code.
//   icae-train lm        pretrain a Llama-architecture LM from scratch -> HF model directory
//   icae-train pretrain  ICAE pretraining (LoRA + memory tokens, AE + LM losses) -> adapter
//   icae-train finetune  ICAE instruction fine-tuning from JSONL -> adapter
//   icae-train probe     the frozen decoder's capacity: slots optimised directly, per slot count
//   icae-train rescale   an equivalent base whose slots have the scale of its token embeddings
// Exit codes: 0 done (or stopped at --stop-at with a checkpoint), 1 failure, 2 bad arguments.
#include <cstdio>
#include <string>
#include <vector>

#include "common/base/process_setup.h"
#include "tools/train/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>&);
};

const Command kCommands[] = {
    {"lm", "pretrain a Llama-architecture LM from scratch (writes an HF model directory)",
     icae::train::RunLm},
    {"pretrain", "ICAE pretraining on a frozen base (writes an adapter)", icae::train::RunPretrain},
    {"cross", "a small cross-model encoder + projector for a frozen decoder (writes a package)",
     icae::train::RunCross},
    {"finetune", "ICAE instruction fine-tuning from JSONL (writes an adapter)",
     icae::train::RunFinetune},
    {"probe", "optimise slots directly through the frozen decoder: its capacity per slot count",
     icae::train::RunProbe},
    {"rescale", "equivalent base whose final-norm outputs (slots) have the scale of its tokens",
     icae::train::RunRescale},
};

void PrintUsage(FILE* out) {
  std::fprintf(out, "usage: icae-train <command> [flags]   (icae-train <command> --help)\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-9s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "icae-train: unknown command '%s'\n", name.c_str());
  PrintUsage(stderr);
  return 2;
}
