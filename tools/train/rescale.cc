#include "tools/train/rescale.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/torch_status.h"

namespace icae::train {

void RegisterRescaleFlags(FlagSet& flags, RescaleOptions* o) {
  flags.String("model", &o->model, "HF model directory to rescale");
  flags.String("out", &o->out, "where the rescaled model directory is written");
  flags.Double("factor", &o->factor,
               "c (0 = the power of two nearest sqrt(|final norm| / mean |embedding|))");
}

double AutoRescaleFactor(const TransformerWeights& w) {
  const double slot = w.final_norm.to(at::kFloat).norm().item<double>();
  const double token = w.embed.to(at::kFloat).norm(2, -1).mean().item<double>();
  const double c = std::sqrt(slot / std::max(token, 1e-12));
  return std::exp2(std::round(std::log2(std::max(c, 1e-6))));
}

void RescaleWeights(const ModelConfig& config, double c, TransformerWeights& w) {
  at::NoGradGuard no_grad;
  const bool tied = config.tie_word_embeddings;
  w.embed.mul_(c);
  for (LayerWeights& l : w.layers) {
    l.wo.mul_(c);
    l.w_down.mul_(c);
  }
  w.final_norm.div_(c);
  if (tied) {
    w.lm_head = w.embed;
  } else {
    w.lm_head.mul_(c);
  }
}

absl::StatusOr<double> RunRescale(const RescaleOptions& o) {
  if (o.model.empty()) return absl::InvalidArgumentError("--model is required");
  if (o.out.empty()) return absl::InvalidArgumentError("--out is required");
  if (o.factor < 0) return absl::InvalidArgumentError("--factor must be >= 0");
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(o.model));
  ASSIGN_OR_RETURN(TransformerWeights w,
                   LoadWeights(o.model, config, nullptr, at::kFloat, at::kCPU));
  double c = o.factor;
  RETURN_IF_ERROR(CatchTorch("rescaling", [&]() -> absl::Status {
    w = CloneWeights(w, config.tie_word_embeddings);
    if (c == 0) c = AutoRescaleFactor(w);
    RescaleWeights(config, c, w);
    return absl::OkStatus();
  }));
  const at::ScalarType dtype = config.torch_dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  RETURN_IF_ERROR(SaveHfModel(o.out, config, w, dtype));
  const std::string tokenizer = JoinPath(o.model, "tokenizer.model");
  if (FileExists(tokenizer)) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(tokenizer));
    RETURN_IF_ERROR(WriteStringToFile(JoinPath(o.out, "tokenizer.model"), bytes));
  }
  return c;
}

}  // namespace icae::train
