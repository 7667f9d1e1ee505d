// icae-train rescale: an exactly equivalent parametrisation of a Llama-architecture base in which
// the final norm's output (what ICAE's encoder emits as slots) has the scale of the input token
// embeddings.
//
// Every sub-layer reads an RMS-normalised residual, so multiplying the embeddings, o_proj and
// down_proj by c multiplies the whole residual stream by c and changes nothing downstream; dividing
// the final norm's weight by c (and, when untied, multiplying lm_head by c) keeps every logit. The
// model computes the same function of its tokens (to float rounding and the norm's eps), but its
// final-normed hidden states become c times smaller next to its inputs. A tied small model learns
// a final-norm weight so large that slots reach ~37x the norm of a token (docs/training.md); a
// frozen decoder then cannot process them with its layers, only read one fixed direction per slot.
// c is a power of two, so bfloat16 weights scale without rounding.
#ifndef ICAE_TOOLS_TRAIN_RESCALE_H_
#define ICAE_TOOLS_TRAIN_RESCALE_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/base/flags.h"
#include "common/model/model_config.h"
#include "common/model/weights.h"

namespace icae::train {

struct RescaleOptions {
  std::string model;  // HF directory (its tokenizer.model is copied along).
  std::string out;
  double factor = 0;  // c; 0 = the power of two nearest sqrt(|final norm|_2 / mean |embedding|).
};

void RegisterRescaleFlags(FlagSet& flags, RescaleOptions* options);

// The factor `auto` picks for these weights (a power of two).
double AutoRescaleFactor(const TransformerWeights& weights);
// Applies the reparametrisation in place (float weights).
void RescaleWeights(const ModelConfig& config, double factor, TransformerWeights& weights);

// Writes the rescaled model to options.out in the stored dtype of options.model; returns c.
absl::StatusOr<double> RunRescale(const RescaleOptions& options);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_RESCALE_H_
