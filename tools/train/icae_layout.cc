#include "tools/train/icae_layout.h"

#include <cmath>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/adapter_writer.h"
#include "common/model/compressor.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "tools/train/lm_task.h"

namespace icae::train {

std::vector<at::Tensor> IcaeTrainables::Parameters() const {
  std::vector<at::Tensor> params;
  for (const auto& layer : lora.layers) {
    for (const std::string& m : config.target_modules) {
      const LoraPair& p = layer.at(m);
      params.insert(params.end(), {p.a, p.b});
    }
  }
  params.push_back(memory_embed);
  return params;
}

absl::StatusOr<IcaeTrainables> InitIcae(const ModelConfig& model, int r, double alpha,
                                        const std::vector<std::string>& targets, int mem_size,
                                        int rate, uint64_t seed, double embed_std,
                                        MemoryPositions memory_positions) {
  if (targets.empty()) return absl::InvalidArgumentError("no LoRA target modules");
  std::vector<std::pair<int, int>> shapes;  // (in, out) per target
  for (size_t i = 0; i < targets.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (targets[j] == targets[i]) {
        return absl::InvalidArgumentError(absl::StrCat("LoRA target ", targets[i], " twice"));
      }
    }
    ASSIGN_OR_RETURN(auto shape, ModuleShape(model, targets[i]));
    shapes.push_back(shape);
  }
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t h = model.hidden_size;
  IcaeTrainables t;
  t.config.r = r;
  t.config.lora_alpha = alpha;
  t.config.target_modules = targets;
  t.config.mem_size = mem_size;
  t.config.compression_rate = rate;
  t.config.memory_positions = memory_positions;
  t.lora.scaling = alpha / r;
  for (int l = 0; l < model.num_layers; ++l) {
    std::map<std::string, LoraPair> layer;
    for (size_t i = 0; i < targets.size(); ++i) {
      const auto [in, out] = shapes[i];
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      at::Tensor a = at::empty({r, in}, at::kFloat).uniform_(-bound, bound, gen);
      at::Tensor b = at::zeros({out, r}, at::kFloat);
      layer[targets[i]] = LoraPair{a.requires_grad_(true), b.requires_grad_(true)};
    }
    t.lora.layers.push_back(std::move(layer));
  }
  t.memory_embed =
      at::normal(0.0, embed_std, {mem_size + 3, h}, gen, at::kFloat).requires_grad_(true);
  return t;
}

absl::StatusOr<IcaeTrainables> IcaeFromAdapter(const Adapter& adapter, const ModelConfig& model) {
  IcaeTrainables t;
  t.config = adapter.config;
  if (adapter.lora.size() != static_cast<size_t>(model.num_layers)) {
    return absl::InvalidArgumentError(absl::StrCat(adapter.path, ": no LoRA tensors loaded"));
  }
  t.lora.scaling = t.config.scaling();
  auto leaf = [](const at::Tensor& x) { return x.to(at::kFloat).clone().requires_grad_(true); };
  for (int l = 0; l < model.num_layers; ++l) {
    std::map<std::string, LoraPair> layer;
    for (const std::string& m : t.config.target_modules) {
      auto it = adapter.lora[l].find(m);
      if (it == adapter.lora[l].end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(adapter.path, ": layer ", l, " lacks the ", m, " LoRA"));
      }
      layer[m] = LoraPair{leaf(it->second.a), leaf(it->second.b)};
    }
    t.lora.layers.push_back(std::move(layer));
  }
  t.memory_embed = adapter.memory_embed.to(at::kFloat).clone().requires_grad_(true);
  return t;
}

absl::Status SaveIcaeAdapter(const std::string& dir, const ModelConfig& model,
                             const IcaeTrainables& icae, const std::string& base_name) {
  Adapter adapter;
  adapter.config = icae.config;
  adapter.lora.resize(model.num_layers);
  for (int l = 0; l < model.num_layers; ++l) {
    for (const auto& [m, p] : icae.lora.layers[l]) {
      adapter.lora[l][m] = LoraPair{p.a.detach(), p.b.detach()};
    }
  }
  adapter.memory_embed = icae.memory_embed.detach();
  return icae::SaveIcaeAdapter(dir, adapter, base_name);
}

at::Tensor EncodeSegments(const Transformer& base, const IcaeTrainables& icae,
                          absl::Span<const std::vector<int>> segments) {
  const at::ScalarType dtype = base.dtype();
  LoraWeights lora;
  lora.scaling = icae.lora.scaling;
  for (const auto& layer : icae.lora.layers) {
    std::map<std::string, LoraPair> cast;
    for (const auto& [m, p] : layer) cast[m] = LoraPair{p.a.to(dtype), p.b.to(dtype)};
    lora.layers.push_back(std::move(cast));
  }
  at::Tensor memory = icae.memory_embed.narrow(0, 0, icae.config.mem_size);  // [mem, hidden]
  return EncodeSegmentBatch(base, memory, segments, icae.config.memory_positions, &lora,
                            icae.config.slot_kind);
}

DecoderExample TargetExample(std::vector<PromptPiece> prompt, int num_slots,
                             const std::vector<int>& target, int final_label) {
  DecoderExample e;
  e.pieces = std::move(prompt);
  e.num_slots = num_slots;
  int prompt_len = 0;
  for (const PromptPiece& p : e.pieces) {
    prompt_len += p.kind == PromptPiece::kTokens    ? static_cast<int>(p.ids.size())
                  : p.kind == PromptPiece::kContext ? num_slots
                                                    : 1;
  }
  if (!target.empty()) e.pieces.push_back({PromptPiece::kTokens, target});
  e.labels.assign(prompt_len - 1, kIgnore);
  e.labels.insert(e.labels.end(), target.begin(), target.end());
  e.labels.push_back(final_label);
  return e;
}

DecoderExample AutoencodingExample(int num_slots, const std::vector<int>& text, int eos_id) {
  return TargetExample(LayoutPrompt(PromptTemplate::kAe, 1, {}, TemplateTokens{}), num_slots, text,
                       eos_id);
}

DecoderExample ContinuationExample(int num_slots, const std::vector<int>& continuation) {
  return TargetExample(LayoutPrompt(PromptTemplate::kRaw, 1, {}, TemplateTokens{}), num_slots,
                       continuation, kIgnore);
}

absl::StatusOr<DecoderExample> FinetuneExample(PromptTemplate tmpl, int num_slots,
                                               const std::vector<int>& prompt,
                                               const std::vector<int>& answer,
                                               const TemplateTokens& tokens, int eos_id) {
  if (tmpl != PromptTemplate::kIcaeV2Instruct && tmpl != PromptTemplate::kIcaeV1) {
    return absl::InvalidArgumentError(
        absl::StrCat("fine-tuning uses the icae-v2-instruct or icae-v1 template, not ",
                     PromptTemplateName(tmpl)));
  }
  return TargetExample(LayoutPrompt(tmpl, 1, prompt, tokens), num_slots, answer, eos_id);
}

at::Tensor SpecialRows(const IcaeTrainables& icae) {
  return icae.memory_embed.narrow(0, icae.config.mem_size, 3);
}

at::Tensor AssembleEmbeds(const Transformer& base, const at::Tensor& special,
                          const DecoderExample& example, const at::Tensor& slots) {
  std::vector<at::Tensor> parts;
  for (const PromptPiece& p : example.pieces) {
    switch (p.kind) {
      case PromptPiece::kTokens:
        parts.push_back(
            base.Embed(at::tensor(std::vector<int64_t>(p.ids.begin(), p.ids.end()), at::kLong)));
        break;
      case PromptPiece::kContext:  // The sample's one context part: all its slots.
        if (SlotKindOf(slots) == SlotKind::kKv) {  // Given as KV (KvOverride): rows unused.
          parts.push_back(at::zeros({slots.size(3), base.config().hidden_size},
                                    at::TensorOptions().dtype(base.dtype())));
        } else {
          parts.push_back(slots.to(base.dtype()));
        }
        break;
      case PromptPiece::kSpecial:
        parts.push_back(special.narrow(0, static_cast<int>(p.special), 1).to(base.dtype()));
        break;
    }
  }
  return at::cat(parts, 0);  // [length, hidden]
}

DecoderLossResult DecoderLoss(const Transformer& base, const at::Tensor& embeds,
                              const at::Tensor& labels, const TeacherLogProbs& teacher,
                              const KvOverride* kv) {
  const int64_t batch = embeds.size(0), len = embeds.size(1);
  at::Tensor positions = at::arange(len, at::kLong).unsqueeze(0).expand({batch, len});
  at::Tensor logits =
      base.Logits(base.Forward(embeds, positions, {}, nullptr, kv));  // [batch, len, vocab]
  logits = logits.reshape({-1, logits.size(-1)});
  at::Tensor flat_labels = labels.reshape({-1});
  at::Tensor labelled = flat_labels.ne(kIgnore);
  DecoderLossResult r;
  r.count = labelled.sum().item<int64_t>();
  r.correct = (logits.detach().argmax(-1).eq(flat_labels) & labelled).sum().item<int64_t>();
  r.loss_sum = at::cross_entropy_loss(logits, flat_labels, {}, at::Reduction::Sum, kIgnore);
  r.kl_sum = at::zeros({}, at::kFloat);
  // The rows of the examples that have a teacher, in the teacher's order.
  std::vector<int64_t> rows;
  std::vector<at::Tensor> targets;
  const int64_t* label = flat_labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < std::min<int64_t>(batch, teacher.size()); ++b) {
    if (!teacher[b].defined()) continue;
    const size_t first = rows.size();
    for (int64_t p = 0; p < len; ++p)
      if (label[b * len + p] != kIgnore) rows.push_back(b * len + p);
    TORCH_CHECK(teacher[b].size(0) == static_cast<int64_t>(rows.size() - first) &&
                    teacher[b].size(1) == logits.size(1),
                "teacher log-probs do not match the labelled positions of example ", b);
    targets.push_back(teacher[b]);
  }
  if (!rows.empty()) {
    at::Tensor student =
        at::log_softmax(logits.index_select(0, at::tensor(rows, at::kLong)).to(at::kFloat), -1);
    at::Tensor target = at::cat(targets, 0);
    r.kl_sum = (target.exp() * (target - student)).sum();
    r.kl_count = static_cast<int64_t>(rows.size());
  }
  return r;
}

std::vector<at::Tensor> EncodeContexts(const Transformer& base, const IcaeTrainables& icae,
                                       const std::vector<std::vector<int>>& contexts) {
  std::vector<std::vector<int>> segments;
  std::vector<int> num_segments;
  for (const std::vector<int>& c : contexts) {
    SegmentPlan plan = PlanSegments(static_cast<int>(c.size()), icae.config.mem_size,
                                    icae.config.compression_rate);
    num_segments.push_back(plan.num_segments);
    for (const auto& [begin, end] : plan.ranges)
      segments.emplace_back(c.begin() + begin, c.begin() + end);
  }
  at::Tensor slots = EncodeSegments(base, icae, segments);  // [segments, ...]
  std::vector<at::Tensor> out;
  int64_t first = 0;
  for (int n : num_segments) {
    out.push_back(JoinSegmentSlots(slots.narrow(0, first, n), icae.config.slot_kind));
    first += n;
  }
  return out;
}

namespace {

// Right-padded decoder inputs of a batch: embeddings [batch, longest, hidden], labels
// [batch, longest] (kIgnore on padding and on KV-slot positions, which compute no output) and,
// when an example reads KV slots, the keys and values given at their positions.
struct PaddedBatch {
  at::Tensor embeds;
  at::Tensor labels;
  std::optional<KvOverride> kv;
  const KvOverride* kv_in() const { return kv ? &*kv : nullptr; }
};

PaddedBatch PadExamples(const Transformer& base, const at::Tensor& special,
                        const std::vector<DecoderExample>& examples,
                        const std::vector<at::Tensor>& slots) {
  int64_t longest = 0;
  bool any_kv = false;
  for (size_t b = 0; b < examples.size(); ++b) {
    longest = std::max<int64_t>(longest, examples[b].length());
    any_kv = any_kv || SlotKindOf(slots[b]) == SlotKind::kKv;
  }
  const int64_t batch = examples.size();
  std::vector<at::Tensor> rows;
  std::vector<int64_t> labels(batch * longest, kIgnore);
  for (int64_t b = 0; b < batch; ++b) {
    at::Tensor e = AssembleEmbeds(base, special, examples[b], slots[b]);  // [len, hidden]
    const int64_t pad = longest - e.size(0);
    if (pad > 0) e = at::cat({e, at::zeros({pad, e.size(1)}, e.options())}, 0);
    rows.push_back(e);
    std::copy(examples[b].labels.begin(), examples[b].labels.end(), labels.begin() + b * longest);
  }
  PaddedBatch out;
  if (any_kv) {
    const ModelConfig& c = base.config();
    KvOverride kv;
    std::vector<uint8_t> mask(batch * longest, 0);
    std::vector<std::vector<at::Tensor>> keys(c.num_layers), values(c.num_layers);
    auto zeros = [&](int64_t n) {
      return at::zeros({c.num_kv_heads, n, c.head_dim}, at::TensorOptions().dtype(base.dtype()));
    };
    for (int64_t b = 0; b < batch; ++b) {
      // Where the example's one context part (its slots) sits.
      int64_t begin = 0, n = 0;
      for (const PromptPiece& p : examples[b].pieces) {
        if (p.kind == PromptPiece::kContext) {
          n = examples[b].num_slots;
          break;
        }
        begin += p.kind == PromptPiece::kTokens ? static_cast<int64_t>(p.ids.size()) : 1;
      }
      const bool is_kv = SlotKindOf(slots[b]) == SlotKind::kKv && n > 0;
      for (int l = 0; l < c.num_layers; ++l) {
        for (int kv_index = 0; kv_index < 2; ++kv_index) {
          std::vector<at::Tensor> parts;
          if (is_kv) {
            parts = {zeros(begin), slots[b][l][kv_index].to(base.dtype()),
                     zeros(longest - begin - n)};
          } else {
            parts = {zeros(longest)};
          }
          (kv_index == 0 ? keys : values)[l].push_back(at::cat(parts, 1));
        }
      }
      if (!is_kv) continue;
      for (int64_t p = begin; p < begin + n; ++p) {
        mask[b * longest + p] = 1;
        labels[b * longest + p] = kIgnore;
      }
    }
    kv.mask = at::tensor(std::vector<int64_t>(mask.begin(), mask.end()), at::kLong)
                  .view({batch, longest})
                  .to(at::kBool);
    for (int l = 0; l < c.num_layers; ++l) {
      kv.kv.keys.push_back(at::stack(keys[l], 0));  // [batch, kv_heads, longest, d]
      kv.kv.values.push_back(at::stack(values[l], 0));
    }
    out.kv = std::move(kv);
  }
  // Right padding needs no mask: causal attention keeps real positions from seeing it.
  out.embeds = at::stack(rows, 0);
  out.labels = at::tensor(labels, at::kLong).view({batch, longest});
  return out;
}

}  // namespace

BatchLoss ExamplesLoss(const Transformer& base, const at::Tensor& special,
                       const std::vector<DecoderExample>& examples,
                       const std::vector<at::Tensor>& slots, const TeacherLogProbs& teacher,
                       double kd_weight, double ce_weight) {
  PaddedBatch padded = PadExamples(base, special, examples, slots);
  const at::Tensor& labels = padded.labels;
  DecoderLossResult r = DecoderLoss(base, padded.embeds, labels, teacher, padded.kv_in());
  BatchLoss out;
  out.labelled = r.count;
  out.correct = r.correct;
  out.positions = labels.numel();
  out.kl_count = r.kl_count;
  out.kl_sum = r.kl_sum.item<double>();
  at::Tensor total = ce_weight * r.loss_sum;
  if (kd_weight != 0) total = total + kd_weight * r.kl_sum;
  out.mean_loss = total / static_cast<double>(std::max<int64_t>(1, r.count));
  return out;
}

TeacherLogProbs LabelledLogProbs(const Transformer& base, const at::Tensor& special,
                                 const std::vector<DecoderExample>& examples,
                                 const std::vector<at::Tensor>& slots) {
  at::NoGradGuard no_grad;
  PaddedBatch padded = PadExamples(base, special, examples, slots);
  const at::Tensor& labels = padded.labels;
  const int64_t batch = padded.embeds.size(0), len = padded.embeds.size(1);
  at::Tensor positions = at::arange(len, at::kLong).unsqueeze(0).expand({batch, len});
  at::Tensor logits = base.Logits(
      base.Forward(padded.embeds, positions, {}, nullptr, padded.kv_in()));  // [batch, len, vocab]
  TeacherLogProbs out;
  for (int64_t b = 0; b < batch; ++b) {
    at::Tensor rows = labels[b].ne(kIgnore).nonzero().view({-1});
    out.push_back(at::log_softmax(logits[b].index_select(0, rows).to(at::kFloat), -1));
  }
  return out;
}

double LabelledNll(const at::Tensor& log_probs, const DecoderExample& example, int64_t* count) {
  std::vector<int64_t> ids;
  for (int label : example.labels) {
    if (label != kIgnore) ids.push_back(label);
  }
  if (count != nullptr) *count = static_cast<int64_t>(ids.size());
  return -log_probs.gather(1, at::tensor(ids, at::kLong).unsqueeze(1)).sum().item<double>();
}

}  // namespace icae::train
