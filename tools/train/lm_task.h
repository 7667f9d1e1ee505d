// icae-train lm: pretrains a Llama-architecture model from scratch on a text corpus (next-token
// loss on random windows) and exports an HF model directory (config.json, model.safetensors and
// the tokenizer.model it was trained with).
#ifndef ICAE_TOOLS_TRAIN_LM_TASK_H_
#define ICAE_TOOLS_TRAIN_LM_TASK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/flags.h"
#include "common/model/model_config.h"
#include "common/model/weights.h"
#include "tools/train/train_options.h"
#include "tools/train/train_task.h"

namespace icae::train {

struct LmOptions {
  std::string train;      // Training corpus (documents separated by empty lines).
  std::string valid;      // Validation corpus.
  std::string tokenizer;  // SentencePiece model; sets the vocabulary.
  int seq_len = 256;
  int valid_windows = 64;  // Validation windows of seq_len + 1 tokens.
  int hidden = 256;
  int layers = 4;
  int heads = 4;
  int kv_heads = 4;
  int intermediate = 0;  // 0: about 8/3 * hidden, rounded up to a multiple of 32.
  int max_positions = 1024;
  bool tie_embeddings = true;
  double rope_theta = 10000.0;
  double init_std = 0.02;
  std::string save_dtype = "float32";  // Storage dtype of the exported model.
  // Fraction of training windows whose second half repeats their first half. Repeated text
  // teaches the model to copy from its context (induction heads) long before plain text does;
  // ICAE's frozen decoder needs exactly that skill to read memory slots.
  double repeat_prob = 0.0;
  // Fraction of training windows into which one span of the window is copied again later, at a
  // random length (8 .. seq_len / 2) and a random distance: copying by content at any distance
  // (induction), not at one fixed offset as repeat_prob teaches.
  double copy_prob = 0.0;
  // Start from this HF model directory instead of random weights (its config wins over the
  // shape flags); for continued training of a base.
  std::string init_model;
};

void RegisterLmFlags(FlagSet& flags, LmOptions* options);

absl::StatusOr<std::unique_ptr<TrainTask>> CreateLmTask(const LmOptions& options,
                                                        const TrainOptions& train);

// Differentiable copies of every tensor in `dtype` (ties preserved); the same tensors when
// `dtype` is theirs.
TransformerWeights CastWeights(const TransformerWeights& weights, bool tied, at::ScalarType dtype);

// Parameters that take part in matrix products per token (q/k/v/o, MLP, lm_head).
double MatmulParameters(const ModelConfig& config);
// Forward FLOPs of causal attention scores and mixing for `batch` sequences of `seq` positions.
double AttentionForwardFlops(const ModelConfig& config, int64_t batch, int64_t seq);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_LM_TASK_H_
