// The ICAE pieces the trainer differentiates through: the trainable LoRA + memory table, the
// encoder (base + unmerged LoRA + memory rows -> slots) and the decoder layouts with their labels,
// and the adapter export. The encoder pass is the serving one (EncodeSegmentBatch) and the layouts
// come from the serving LayoutPrompt, so what is trained is what is served by construction (a
// test also compares the tensors).
#ifndef ICAE_TOOLS_TRAIN_ICAE_LAYOUT_H_
#define ICAE_TOOLS_TRAIN_ICAE_LAYOUT_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/adapter.h"
#include "common/model/model_config.h"
#include "common/model/slot_decoder.h"
#include "common/model/transformer.h"

namespace icae::train {

inline constexpr int kIgnore = -100;  // Label of a position without loss.

// The kind of a slot tensor in the trainer: [n, hidden] embedding slots, or
// [layers, 2, kv_heads, n, head_dim] KV slots.
inline SlotKind SlotKindOf(const at::Tensor& slots) {
  return slots.dim() == 5 ? SlotKind::kKv : SlotKind::kEmbedding;
}
// Decoder positions the slots take.
inline int SlotCount(const at::Tensor& slots) {
  return static_cast<int>(slots.size(SlotKindOf(slots) == SlotKind::kKv ? 3 : 0));
}

// float32 leaves with requires_grad.
struct IcaeTrainables {
  AdapterConfig config;     // r, lora_alpha, target_modules, mem_size, rate.
  LoraWeights lora;         // Per layer, per target module: A [r, in], B [out, r].
  at::Tensor memory_embed;  // [mem_size + 3, hidden]

  std::vector<at::Tensor> Parameters() const;
};

// PEFT's initialisation: A uniform in +-1/sqrt(in) (kaiming-uniform, a = sqrt(5)), B zero, so
// the encoder starts as the base model; memory rows ~ N(0, embed_std). `targets` is any set of
// PEFT module names (q_proj ... down_proj; ICAE v2 released q_proj + v_proj). Deterministic in
// `seed`.
absl::StatusOr<IcaeTrainables> InitIcae(
    const ModelConfig& model, int r, double alpha, const std::vector<std::string>& targets,
    int mem_size, int rate, uint64_t seed, double embed_std,
    MemoryPositions memory_positions = MemoryPositions::kAppend);
// From a loaded adapter (with its LoRA, whatever its target modules).
absl::StatusOr<IcaeTrainables> IcaeFromAdapter(const Adapter& adapter, const ModelConfig& model);

// Writes <dir>/adapter.safetensors (ICAE v2 key names) and <dir>/adapter_config.json.
absl::Status SaveIcaeAdapter(const std::string& dir, const ModelConfig& model,
                             const IcaeTrainables& icae, const std::string& base_name);

// Slots of independent segments (each at most mem_size * rate tokens) through the shared
// encoder pass (EncodeSegmentBatch, as Compressor serves them) with the trainables' unmerged LoRA:
// [segments, mem_size, hidden] (KV slots: [segments, layers, 2, kv_heads, mem_size, head_dim]) in
// the base's dtype, differentiable w.r.t. the trainables.
at::Tensor EncodeSegments(const Transformer& base, const IcaeTrainables& icae,
                          absl::Span<const std::vector<int>> segments);

// One decoder input: the serving layout's pieces (LayoutPrompt, with one context part: the
// sample's slots) followed by the target tokens, and the label of every position (the id that
// position must predict, or kIgnore).
struct DecoderExample {
  std::vector<PromptPiece> pieces;
  int num_slots = 0;
  std::vector<int> labels;
  int length() const { return static_cast<int>(labels.size()); }
};

// `prompt` (from LayoutPrompt) then `target`: the last prompt position predicts target[0], each
// target token the next, and the last one `final_label` (EOS, or kIgnore).
DecoderExample TargetExample(std::vector<PromptPiece> prompt, int num_slots,
                             const std::vector<int>& target, int final_label);
// The ae template then the text: [slots][AE] text -> labels: text then EOS.
DecoderExample AutoencodingExample(int num_slots, const std::vector<int>& text, int eos_id);
// The raw template then the continuation: [slots] continuation (the last slot predicts its
// first token).
DecoderExample ContinuationExample(int num_slots, const std::vector<int>& continuation);
// Fine-tuning on the icae-v2-instruct or icae-v1 template with `prompt`, then the answer; labels
// on the answer and EOS only.
absl::StatusOr<DecoderExample> FinetuneExample(PromptTemplate tmpl, int num_slots,
                                               const std::vector<int>& prompt,
                                               const std::vector<int>& answer,
                                               const TemplateTokens& tokens, int eos_id);

// The AE, LM and FT rows of the trainables' memory table: [3, hidden].
at::Tensor SpecialRows(const IcaeTrainables& icae);

// Decoder input embeddings [length, hidden] (base dtype) for `example` with its slots
// [num_slots, hidden]; `special` [3, hidden] holds the AE, LM and FT embeddings. KV slots
// ([layers, 2, kv_heads, n, head_dim]) take zero rows: ExamplesLoss gives their keys and values.
at::Tensor AssembleEmbeds(const Transformer& base, const at::Tensor& special,
                          const DecoderExample& example, const at::Tensor& slots);

// Summed cross-entropy over the labelled positions of a right-padded batch, their count and how
// many of them the argmax predicts (teacher forcing).
//   embeds: [batch, len, hidden]; labels: [batch, len] int64, kIgnore where none.
struct DecoderLossResult {
  at::Tensor loss_sum;  // Scalar float32.
  int64_t count = 0;
  int64_t correct = 0;
  at::Tensor kl_sum;  // Scalar float32: the distillation term, summed (0 without a teacher).
  int64_t kl_count = 0;
};
// Distillation targets: per example of the batch, the teacher's log-probabilities at that
// example's labelled positions, in order ([labelled, vocab], float32, no gradient), or an
// undefined tensor for an example without a teacher. The term is KL(teacher || model) per position.
using TeacherLogProbs = std::vector<at::Tensor>;
DecoderLossResult DecoderLoss(const Transformer& base, const at::Tensor& embeds,
                              const at::Tensor& labels, const TeacherLogProbs& teacher = {},
                              const KvOverride* kv = nullptr);

// Slots of every context by the multi-span rule (all segments of all contexts as one batch):
// contexts[i] -> [num_segments_i * mem_size, hidden].
std::vector<at::Tensor> EncodeContexts(const Transformer& base, const IcaeTrainables& icae,
                                       const std::vector<std::vector<int>>& contexts);

// Pads examples to one batch and returns the mean loss over labelled positions, the count and
// the number of positions processed.
// With a teacher, mean_loss is (ce_weight * cross-entropy + kd_weight * KL) summed over the
// labelled positions, divided by their count (ce_weight 0: distillation alone, as the capacity
// probe's continuation objective needs, where the labels themselves must not be learnt).
struct BatchLoss {
  at::Tensor mean_loss;
  int64_t labelled = 0;
  int64_t correct = 0;
  int64_t positions = 0;
  double kl_sum = 0;  // Distillation term, summed over kl_count positions.
  int64_t kl_count = 0;
};
BatchLoss ExamplesLoss(const Transformer& base, const at::Tensor& special,
                       const std::vector<DecoderExample>& examples,
                       const std::vector<at::Tensor>& slots, const TeacherLogProbs& teacher = {},
                       double kd_weight = 0, double ce_weight = 1);

// The model's log-probabilities (float32, no gradient) at each example's labelled positions:
// the teacher side of ExamplesLoss's distillation term.
TeacherLogProbs LabelledLogProbs(const Transformer& base, const at::Tensor& special,
                                 const std::vector<DecoderExample>& examples,
                                 const std::vector<at::Tensor>& slots);

// The negative log-likelihood of `example`'s labels under `log_probs` (one of LabelledLogProbs'
// tensors for that example), summed; *count (when set) receives the number of labels.
double LabelledNll(const at::Tensor& log_probs, const DecoderExample& example,
                   int64_t* count = nullptr);

}  // namespace icae::train

#endif  // ICAE_TOOLS_TRAIN_ICAE_LAYOUT_H_
