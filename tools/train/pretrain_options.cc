// icae-train pretrain / cross: the flags and the checks that need no model (CreatePretrainTask
// runs them first; icae_tasks.cc holds the task itself).
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "tools/train/icae_setup.h"
#include "tools/train/icae_tasks.h"

namespace icae::train {

void RegisterPretrainFlags(FlagSet& flags, PretrainOptions* o) {
  RegisterIcaeFlags(flags, o);
  flags.Int("span-tokens", &o->span_tokens, "tokens compressed per sample (0 = mem_size * rate)");
  flags.Int("min-span-tokens", &o->min_span_tokens,
            "draw each sample's compressed length uniformly in [this, --span-tokens] (0 = off)");
  flags.Double("short-span-ratio", &o->short_span_ratio,
               "with --min-span-tokens: the share of samples given a drawn length (the rest "
               "compress --span-tokens)");
  flags.Double("lm-ratio", &o->lm_ratio,
               "probability of the continuation objective per sample (ICAE's lambda)");
  flags.Int("ae-only-steps", &o->ae_only_steps,
            "optimizer steps of autoencoding only before --lm-ratio applies");
  flags.Bool("train-base", &o->train_base,
             "co-train the base's weights too (a base of your own, not a released one); the "
             "trained base is exported to <out>/base");
  flags.Double("text-lm-ratio", &o->text_lm_ratio,
               "with --train-base: probability of plain language modelling on the window");
  flags.Double("base-lr-scale", &o->base_lr_scale, "with --train-base: lr multiplier of the base");
  flags.String("slot-teacher", &o->slot_teacher,
               "cross encoders: an ICAE adapter of this base (same mem_size; as many slots per "
               "context) whose "
               "slots the cross encoder's are pulled towards");
  flags.Double("slot-mse-weight", &o->slot_mse_weight,
               "weight of the relative squared error to --slot-teacher's slots (0 = off)");
  flags.Double("copy-continuation-prob", &o->copy_continuation_prob,
               "probability that a continuation sample gets 8-32 tokens of its span copied into "
               "its continuation (0 = off)");
  flags.Double("kd-weight", &o->kd_weight,
               "weight of KL(base reading the text || base reading the slots) on continuation "
               "samples (0 = off)");
}

absl::Status ValidatePretrainOptions(const PretrainOptions& options) {
  RETURN_IF_ERROR(ValidateIcaeOptions(options));
  if (options.lm_ratio < 0 || options.lm_ratio > 1) {
    return absl::InvalidArgumentError("--lm-ratio must be in [0, 1]");
  }
  if (options.span_tokens < 0) return absl::InvalidArgumentError("--span-tokens must be >= 0");
  if (options.min_span_tokens < 0) {
    return absl::InvalidArgumentError("--min-span-tokens must be >= 0");
  }
  if (!(options.short_span_ratio >= 0 && options.short_span_ratio <= 1)) {
    return absl::InvalidArgumentError("--short-span-ratio must be in [0, 1]");
  }
  if (options.ae_only_steps < 0) {
    return absl::InvalidArgumentError("--ae-only-steps must be >= 0");
  }
  if (options.text_lm_ratio < 0 || options.text_lm_ratio >= 1) {
    return absl::InvalidArgumentError("--text-lm-ratio must be in [0, 1)");
  }
  if (options.text_lm_ratio > 0 && !options.train_base) {
    return absl::InvalidArgumentError(
        "--text-lm-ratio trains only the base's weights: it needs --train-base");
  }
  if (!(options.base_lr_scale > 0)) {
    return absl::InvalidArgumentError("--base-lr-scale must be positive");
  }
  if (!(options.copy_continuation_prob >= 0 && options.copy_continuation_prob <= 1)) {
    return absl::InvalidArgumentError("--copy-continuation-prob must be in [0, 1]");
  }
  if (!(options.kd_weight >= 0) || !std::isfinite(options.kd_weight)) {
    return absl::InvalidArgumentError("--kd-weight must be a finite number >= 0");
  }
  if (options.cross && options.train_base) {
    return absl::InvalidArgumentError("--train-base does not apply to a cross encoder");
  }
  if (options.cross && options.slot_kind_given && options.slot_kind != "embedding") {
    return absl::InvalidArgumentError("a cross encoder makes embedding slots only");
  }
  if ((!options.slot_teacher.empty() || options.slot_mse_weight != 0) &&
      (!options.cross || options.slot_teacher.empty() || !(options.slot_mse_weight > 0))) {
    return absl::InvalidArgumentError(
        "--slot-teacher and a positive --slot-mse-weight go together, for a cross encoder");
  }
  return absl::OkStatus();
}

}  // namespace icae::train
