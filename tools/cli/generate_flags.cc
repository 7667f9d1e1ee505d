#include "tools/cli/generate_flags.h"

namespace icae::cli {

void RegisterGenerateFlags(FlagSet& flags, GenerateFlags* out) {
  flags.StringList("slots", &out->slots, "slot files (safetensors from icae compress), in order");
  flags.String("template", &out->template_name, "ae, icae-v2-instruct, icae-v1 or raw");
  flags.String("prompt", &out->prompt, "prompt text (tokenized without BOS)");
  flags.String("prompt_ids", &out->prompt_ids, "prompt as comma-separated token ids");
  flags.Int("max_new_tokens", &out->max_new_tokens, "most tokens to generate");
  flags.Double("temperature", &out->temperature, "0 = greedy");
  flags.Double("top_p", &out->top_p, "nucleus sampling threshold");
  flags.Int("top_k", &out->top_k, "keep the k most likely tokens (0 = all)");
  flags.Int64("seed", &out->seed, "sampling seed (-1 = random)");
  flags.StringList("stop", &out->stop, "stop strings");
  flags.Bool("print_ids", &out->print_ids, "print the generated ids instead of the text");
}

absl::Status ResolveGenerateFlags(const FlagSet& flags, const GenerateFlags& in,
                                  GenerateRequestSpec* spec) {
  if (flags.IsSet("prompt") && flags.IsSet("prompt_ids")) {
    return absl::InvalidArgumentError("give --prompt or --prompt-ids, not both");
  }
  if (flags.IsSet("prompt_ids")) {
    if (absl::Status s = ParseIntList(in.prompt_ids, "--prompt-ids", &spec->prompt_ids); !s.ok()) {
      return s;
    }
  }
  spec->prompt_text = in.prompt;
  const bool has_prompt = !spec->prompt_text.empty() || !spec->prompt_ids.empty();
  spec->template_name = !in.template_name.empty() ? in.template_name
                        : has_prompt              ? "icae-v2-instruct"
                                                  : "ae";
  spec->params.max_new_tokens = in.max_new_tokens;
  spec->params.sampling.temperature = static_cast<float>(in.temperature);
  spec->params.sampling.top_p = static_cast<float>(in.top_p);
  spec->params.sampling.top_k = in.top_k;
  if (in.seed >= 0) spec->params.sampling.seed = static_cast<uint64_t>(in.seed);
  spec->params.stop = in.stop;
  if (in.max_new_tokens <= 0)
    return absl::InvalidArgumentError("--max-new-tokens must be positive");
  return spec->params.sampling.Validate();
}

}  // namespace icae::cli
