// The ICAE pieces the trainer differentiates through: the trainable LoRA + memory table, the
// encoder (base + unmerged LoRA + memory rows -> slots) and the decoder layouts with their labels,
// and the adapter export. The layouts mirror SlotDecoder::BuildPrompt token for token (a test
// checks that), so what is trained is what is served.
#ifndef ICAE_TOOLS_TRAIN_ICAE_LAYOUT_H_
#define ICAE_TOOLS_TRAIN_ICAE_LAYOUT_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/adapter.h"
#include "common/model/model_config.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"

namespace icae::train {

inline constexpr int kIgnore = -100;  // Label of a position without loss.

// float32 leaves with requires_grad.
struct IcaeTrainables {
  AdapterConfig config;     // r, lora_alpha, target_modules {q_proj, v_proj}, mem_size, rate.
  LoraWeights lora;         // q_a [r, hidden], q_b [q_dim, r], v_a [r, hidden], v_b [kv_dim, r].
  at::Tensor memory_embed;  // [mem_size + 3, hidden]

  std::vector<at::Tensor> Parameters() const;
};

// PEFT's initialisation: A uniform in +-1/sqrt(hidden) (kaiming-uniform, a = sqrt(5)), B zero, so
// the encoder starts as the base model; memory rows ~ N(0, embed_std). Deterministic in `seed`.
IcaeTrainables InitIcae(const ModelConfig& model, int r, double alpha, int mem_size, int rate,
                        uint64_t seed, double embed_std);
// From a loaded adapter (with its LoRA; q_proj and v_proj only).
absl::StatusOr<IcaeTrainables> IcaeFromAdapter(const Adapter& adapter, const ModelConfig& model);

// Writes <dir>/adapter.safetensors (ICAE v2 key names) and <dir>/adapter_config.json.
absl::Status SaveIcaeAdapter(const std::string& dir, const ModelConfig& model,
                             const IcaeTrainables& icae, const std::string& base_name);

// Slots of equal-length segments: ids [batch, len] -> [batch, mem_size, hidden] in the base's
// dtype, differentiable w.r.t. the trainables. Positions restart at 0 per segment.
at::Tensor EncodeSegments(const Transformer& base, const IcaeTrainables& icae,
                          const at::Tensor& ids);

// One decoder input: pieces in order and the label of every position (the id that position must
// predict, or kIgnore).
struct DecoderPiece {
  enum Kind { kTokens, kSlots, kSpecial } kind = kTokens;
  std::vector<int> ids;                      // kTokens
  int num_slots = 0;                         // kSlots: the sample's slots, in order.
  SpecialToken special = SpecialToken::kAe;  // kSpecial
};
struct DecoderExample {
  std::vector<DecoderPiece> pieces;
  std::vector<int> labels;
  int length() const { return static_cast<int>(labels.size()); }
};

// [slots][AE] text -> labels: text then EOS.
DecoderExample AutoencodingExample(int num_slots, const std::vector<int>& text, int eos_id);
// [slots] continuation -> labels: the continuation (the last slot predicts its first token).
DecoderExample ContinuationExample(int num_slots, const std::vector<int>& continuation);
// Fine-tuning: icae-v2-instruct: <s> [INST] [slots][FT] prompt [/INST] answer </s>;
// icae-v1: [slots][FT] prompt [FT] answer </s>. Labels on answer and EOS only.
absl::StatusOr<DecoderExample> FinetuneExample(PromptTemplate tmpl, int num_slots,
                                               const std::vector<int>& prompt,
                                               const std::vector<int>& answer,
                                               const std::vector<int>& inst_open,
                                               const std::vector<int>& inst_close, int bos_id,
                                               int eos_id);

// Decoder input embeddings [length, hidden] (base dtype) for `example` with its slots
// [num_slots, hidden]; special rows come from the trainables' memory table.
at::Tensor AssembleEmbeds(const Transformer& base, const IcaeTrainables& icae,
                          const DecoderExample& example, const at::Tensor& slots);

// Summed cross-entropy over the labelled positions of a right-padded batch, their count and how
// many of them the argmax predicts (teacher forcing).
//   embeds: [batch, len, hidden]; labels: [batch, len] int64, kIgnore where none.
struct DecoderLossResult {
  at::Tensor loss_sum;  // Scalar float32.
  int64_t count = 0;
  int64_t correct = 0;
};
DecoderLossResult DecoderLoss(const Transformer& base, const at::Tensor& embeds,
                              const at::Tensor& labels);

// Slots of every context by the multi-span rule (segments of equal length are encoded as one
// batch): contexts[i] -> [num_segments_i * mem_size, hidden].
std::vector<at::Tensor> EncodeContexts(const Transformer& base, const IcaeTrainables& icae,
                                       const std::vector<std::vector<int>>& contexts);

// Pads examples to one batch and returns the mean loss over labelled positions, the count and
// the number of positions processed.
struct BatchLoss {
  at::Tensor mean_loss;
  int64_t labelled = 0;
  int64_t correct = 0;
  int64_t positions = 0;
};
BatchLoss ExamplesLoss(const Transformer& base, const IcaeTrainables& icae,
                       const std::vector<DecoderExample>& examples,
                       const std::vector<at::Tensor>& slots);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_ICAE_LAYOUT_H_
