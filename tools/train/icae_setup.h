// What the ICAE pretraining and fine-tuning tasks share: their flags, the frozen base with its
// tokenizer and the trainables (loaded or initialised), the recipe string a checkpoint checks,
// the FLOP count the throughput line reports. Internal to tools/train.
#ifndef ICAE_TOOLS_TRAIN_ICAE_SETUP_H_
#define ICAE_TOOLS_TRAIN_ICAE_SETUP_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/flags.h"
#include "common/io/tokenizer.h"
#include "common/model/transformer.h"
#include "tools/train/cross_setup.h"
#include "tools/train/icae_tasks.h"
#include "tools/train/icae_layout.h"

namespace icae::train {

// "all" or a comma-separated list of projection names.
std::vector<std::string> ParseLoraTargets(const std::string& flag);
void RegisterIcaeFlags(FlagSet& flags, IcaeOptions* o);
absl::Status ValidateIcaeOptions(const IcaeOptions& o);
// Per-group lr multipliers of the trainables (`residual` for the memory rows and the residual
// projections' LoRA B).
std::vector<double> IcaeLearningRateScales(const IcaeTrainables& icae, double residual);

// What both ICAE tasks share: the frozen base, its tokenizer and the trainables.
struct IcaeSetup {
  std::unique_ptr<Transformer> base;
  std::unique_ptr<Tokenizer> tokenizer;
  IcaeTrainables icae;
  // Co-training only: float32 master weights of the base (trainable leaves).
  std::optional<TransformerWeights> master;
  // icae-train cross: the cross encoder trains instead of `icae`, whose config then holds only
  // the segment plan (mem_size, rate, memory positions; embedding slots; no LoRA).
  std::optional<CrossTrainables> cross;
};

absl::StatusOr<IcaeSetup> LoadIcaeSetup(const IcaeOptions& o, const TrainOptions& train,
                                        bool train_base = false);
// The frozen base and tokenizer with a cross encoder: new (from o.cross_options) or, when
// o.init_adapter names a package, that package's.
absl::StatusOr<IcaeSetup> LoadCrossSetup(const PretrainOptions& o, const TrainOptions& train);
std::string IcaeRecipe(const IcaeSetup& s, const std::string& model);
// Forward + backward FLOPs for encoder positions (frozen weights: input gradients only, no
// lm_head) and decoder positions (logits included).
double IcaeFlops(const ModelConfig& c, int64_t batch, int64_t enc_len, int64_t dec_len);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_ICAE_SETUP_H_
