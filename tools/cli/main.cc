// icae: offline model commands and a client for the encoder and decoder services.
#include <cstdio>
#include <cstring>
#include <string>

#include "common/base/process_setup.h"
#include "tools/cli/cli.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const icae::cli::Args&);
};

const Command kCommands[] = {
    {"logits", "write every position's logits for token ids (debugging a checkpoint)",
     icae::cli::RunLogits},
    {"compress", "compress text or ids into memory slots (offline, or --encoder HOST:PORT)",
     icae::cli::RunCompress},
    {"generate", "generate from slots + prompt (offline, or --decoder HOST:PORT)",
     icae::cli::RunGenerate},
    {"tokenize", "print the token ids of a text", icae::cli::RunTokenize},
    {"ask", "compress documents (--encoder) and answer a question from them (--decoder)",
     icae::cli::RunAsk},
    {"eval", "autoencoding BLEU and continuation perplexity of an adapter on a text",
     icae::cli::RunEval},
    {"health", "grpc.health.v1 state of a server (--wait to wait for SERVING)",
     icae::cli::RunHealth},
    {"demo", "compress, reconstruct and continue a document through running services",
     icae::cli::RunDemo},
};

void PrintUsage(FILE* out) {
  std::fprintf(out, "usage: icae <command> [flags]   (icae <command> --help for its flags)\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  if (argc < 2) {
    PrintUsage(stderr);
    return icae::cli::kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(stdout);
    return icae::cli::kExitOk;
  }
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(icae::cli::Args(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "icae: unknown command '%s'\n", name.c_str());
  PrintUsage(stderr);
  return icae::cli::kExitUsage;
}
