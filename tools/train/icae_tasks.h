// icae-train pretrain / finetune: ICAE training on a frozen base model. The trainable part is
// LoRA on the chosen projections (the encoder only) and memory_token_embed [mem_size + 3, hidden]
// (memory rows, then AE, LM, FT). Both export an adapter directory in the ICAE v2 layout
// (adapter.safetensors + adapter_config.json) that LoadAdapter reads.
//
// pretrain: each sample is a window of span + span tokens of the corpus; the first span is
//   compressed into mem_size slots per segment (multi-span rule); with probability 1 - lm_ratio it
//   trains autoencoding ([slots][AE] -> span, EOS), else continuation ([slots] -> next span).
// finetune: JSONL lines {"context", "prompt", "answer"}; the context is compressed, the decoder
//   reads the icae-v2-instruct or icae-v1 template and the loss covers the answer and EOS only.
#ifndef ICAE_TOOLS_TRAIN_ICAE_TASKS_H_
#define ICAE_TOOLS_TRAIN_ICAE_TASKS_H_

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/flags.h"
#include "tools/train/train_options.h"
#include "tools/train/train_task.h"

namespace icae::train {

struct IcaeOptions {
  std::string model;  // Frozen base: HF model directory with tokenizer.model.
  std::string train;  // Training data.
  std::string valid;  // Validation data.
  // Start from this adapter: its r, alpha, targets, memory layout and mem_size win. Its rate too,
  // unless rate_given: one set of memory rows may then train at a new rate (a rate curriculum).
  std::string init_adapter;
  int lora_r = 32;
  double lora_alpha = 64;
  // PEFT module names, comma-separated: any of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,
  // down_proj (the released ICAE v2 adapter targets q_proj,v_proj), or "all".
  std::string lora_targets = "q_proj,v_proj";
  int mem_size = 32;
  int rate = 4;                             // Tokens per slot: segments of mem_size * rate tokens.
  bool rate_given = false;                  // --rate was on the command line.
  bool mem_size_given = false;              // --mem-size was on the command line.
  bool slot_kind_given = false;             // --slot-kind was on the command line.
  std::string memory_positions = "append";  // Encoder layout of memory rows: append | uniform.
  std::string slot_kind = "embedding";      // What the encoder emits: embedding | kv.
  int valid_samples = 32;
  // Learning-rate multiplier for what writes into the residual stream at its own scale: the
  // memory rows and the B matrices of o_proj / down_proj LoRA (on a base rescaled by c, use c).
  double residual_lr_scale = 1.0;
};

// icae-train cross: a cross-model encoder (common/model/cross_encoder.h) in place of LoRA.
struct CrossOptions {
  // Start the small encoder from this HF model directory (any Llama-architecture model, e.g. the
  // decoder's base or a small LM from icae-train lm); empty: random weights of the shape below.
  std::string encoder_init;
  // With encoder_init: an ICAE adapter of that model whose LoRA is merged into it and whose
  // memory and special rows start the cross encoder's (a linear projector then starts as the
  // identity): the small encoder begins as the first layers of that ICAE encoder.
  std::string encoder_init_adapter;
  int encoder_layers = 2;  // Layers kept from --encoder-init (0 = all), or of the random model.
  int encoder_hidden = 128;
  int encoder_heads = 2;
  int encoder_intermediate = 0;  // 0: about 8/3 * hidden, rounded up to a multiple of 32.
  std::string projector = "mlp";  // linear | mlp
  int projector_hidden = 0;       // mlp: 0 = the decoder's hidden size
};

struct PretrainOptions : IcaeOptions {
  // Train a cross-model encoder (the package is the artefact; --init-adapter may name one to go
  // on from) instead of an ICAE adapter. The LoRA flags do not apply.
  bool cross = false;
  CrossOptions cross_options;
  int span_tokens = 0;    // Tokens compressed per sample (0 = mem_size * rate).
  // When > 0, each sample compresses a length drawn uniformly in [min_span_tokens, span_tokens]
  // (a short span, or a document's last segment, is then seen in training too); validation keeps
  // span_tokens.
  int min_span_tokens = 0;
  double short_span_ratio = 1.0;  // Share of samples given a drawn length (the rest: span_tokens).
  double lm_ratio = 0.5;  // Probability of the continuation objective (ICAE's lambda).
  // Optimizer steps of autoencoding only before lm_ratio applies: the encoder first learns to
  // carry the span, which the continuation objective alone teaches far more slowly.
  int ae_only_steps = 0;
  // Co-training of the base (a base that is ours, not a released one): the decoder's weights
  // train too, so that it learns to read slots; text_lm_ratio of the samples are plain language
  // modelling on the text window (no slots) so that it stays a language model. Export writes the
  // trained base to <out>/base next to the adapter. ICAE proper then goes on with the base frozen.
  bool train_base = false;
  double text_lm_ratio = 0.0;
  double base_lr_scale = 1.0;  // lr multiplier of the base's weights.
  // Weight of a distillation term on continuation samples: KL(teacher || model) at every
  // continuation position, the teacher being the same base reading the span's text instead of
  // its slots (no gradient). It asks of the slots what the continuation target measures: that
  // the decoder predicts from them as it predicts from the text.
  double kd_weight = 0.0;
  // Probability that a continuation sample's continuation gets a piece of its own span copied
  // over it (CopySpanIntoContinuation): natural text repeats names and phrases of its context,
  // which the decoder copies from the text; these samples make the gradient of the continuation
  // loss about looking words up in the slots.
  double copy_continuation_prob = 0.0;
  // Cross encoders: an ICAE adapter of the same base and mem_size (as many slots per context)
  // whose slots the cross encoder's slots are pulled towards, with weight slot_mse_weight on
  // mean((slots - teacher)^2) / mean(teacher^2) per micro-batch. The frozen decoder already reads
  // the teacher's slots; matching them first gives the small encoder that reading for free.
  std::string slot_teacher;
  double slot_mse_weight = 0.0;
};

struct FinetuneOptions : IcaeOptions {
  std::string prompt_template = "icae-v2-instruct";  // or icae-v1
  int max_context_tokens = 5120;
};

// Copies a piece of the span window[0, len) (8 to 32 tokens, at most len / 2) over the
// continuation window[len, len + span) at a random place; the span itself is unchanged.
void CopySpanIntoContinuation(std::vector<int>& window, int len, int span, std::mt19937_64& rng);

void RegisterPretrainFlags(FlagSet& flags, PretrainOptions* options);
// The checks of `options` that need no model (ranges, flags that go together); InvalidArgument
// names the flag.
absl::Status ValidatePretrainOptions(const PretrainOptions& options);
void RegisterCrossFlags(FlagSet& flags, CrossOptions* options);
void RegisterFinetuneFlags(FlagSet& flags, FinetuneOptions* options);

absl::StatusOr<std::unique_ptr<TrainTask>> CreatePretrainTask(const PretrainOptions& options,
                                                              const TrainOptions& train);
absl::StatusOr<std::unique_ptr<TrainTask>> CreateFinetuneTask(const FinetuneOptions& options,
                                                              const TrainOptions& train);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_ICAE_TASKS_H_
