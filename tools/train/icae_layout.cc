#include "tools/train/icae_layout.h"

#include <array>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/adapter_writer.h"
#include "common/model/segmenter.h"
#include "common/model/torch_status.h"
#include "tools/train/lm_task.h"

namespace icae::train {

std::vector<at::Tensor> IcaeTrainables::Parameters() const {
  std::vector<at::Tensor> params;
  for (const LoraLayer& l : lora.layers) params.insert(params.end(), {l.q_a, l.q_b, l.v_a, l.v_b});
  params.push_back(memory_embed);
  return params;
}

IcaeTrainables InitIcae(const ModelConfig& model, int r, double alpha, int mem_size, int rate,
                        uint64_t seed, double embed_std) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t h = model.hidden_size;
  const double bound = 1.0 / std::sqrt(static_cast<double>(h));
  auto uniform = [&](int64_t rows) {
    return at::empty({rows, h}, at::kFloat).uniform_(-bound, bound, gen).requires_grad_(true);
  };
  IcaeTrainables t;
  t.config.r = r;
  t.config.lora_alpha = alpha;
  t.config.target_modules = {"q_proj", "v_proj"};
  t.config.mem_size = mem_size;
  t.config.compression_rate = rate;
  t.lora.scaling = alpha / r;
  for (int l = 0; l < model.num_layers; ++l) {
    LoraLayer layer;
    layer.q_a = uniform(r);
    layer.q_b = at::zeros({model.q_dim(), r}, at::kFloat).requires_grad_(true);
    layer.v_a = uniform(r);
    layer.v_b = at::zeros({model.kv_dim(), r}, at::kFloat).requires_grad_(true);
    t.lora.layers.push_back(std::move(layer));
  }
  t.memory_embed =
      at::normal(0.0, embed_std, {mem_size + 3, h}, gen, at::kFloat).requires_grad_(true);
  return t;
}

absl::StatusOr<IcaeTrainables> IcaeFromAdapter(const Adapter& adapter, const ModelConfig& model) {
  IcaeTrainables t;
  t.config = adapter.config;
  for (const std::string& m : t.config.target_modules) {
    if (m != "q_proj" && m != "v_proj") {
      return absl::InvalidArgumentError(absl::StrCat(
          adapter.path, ": targets ", m, "; the trainer trains LoRA on q_proj and v_proj only"));
    }
  }
  if (adapter.lora.size() != static_cast<size_t>(model.num_layers)) {
    return absl::InvalidArgumentError(absl::StrCat(adapter.path, ": no LoRA tensors loaded"));
  }
  t.lora.scaling = t.config.scaling();
  for (int l = 0; l < model.num_layers; ++l) {
    const auto& layer = adapter.lora[l];
    auto q = layer.find("q_proj");
    auto v = layer.find("v_proj");
    if (q == layer.end() || v == layer.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(adapter.path, ": layer ", l, " lacks q_proj or v_proj LoRA"));
    }
    auto leaf = [](const at::Tensor& x) { return x.to(at::kFloat).clone().requires_grad_(true); };
    t.lora.layers.push_back(
        LoraLayer{leaf(q->second.a), leaf(q->second.b), leaf(v->second.a), leaf(v->second.b)});
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
    const LoraLayer& layer = icae.lora.layers[l];
    adapter.lora[l]["q_proj"] = LoraPair{layer.q_a.detach(), layer.q_b.detach()};
    adapter.lora[l]["v_proj"] = LoraPair{layer.v_a.detach(), layer.v_b.detach()};
  }
  adapter.memory_embed = icae.memory_embed.detach();
  return icae::SaveIcaeAdapter(dir, adapter, base_name);
}

at::Tensor EncodeSegments(const Transformer& base, const IcaeTrainables& icae,
                          const at::Tensor& ids) {
  const int64_t batch = ids.size(0), len = ids.size(1), mem = icae.config.mem_size;
  const at::ScalarType dtype = base.dtype();
  LoraWeights lora;
  lora.scaling = icae.lora.scaling;
  for (const LoraLayer& l : icae.lora.layers) {
    lora.layers.push_back(
        LoraLayer{l.q_a.to(dtype), l.q_b.to(dtype), l.v_a.to(dtype), l.v_b.to(dtype)});
  }
  at::Tensor memory = icae.memory_embed.narrow(0, 0, mem).to(dtype);  // [mem, hidden]
  at::Tensor embeds = at::cat({base.Embed(ids), memory.unsqueeze(0).expand({batch, mem, -1})},
                              1);  // [batch, len + mem, hidden]
  at::Tensor positions = at::arange(len + mem, at::kLong).unsqueeze(0).expand({batch, len + mem});
  at::Tensor hidden = base.Forward(embeds, positions, {}, &lora);  // [batch, len + mem, hidden]
  return hidden.narrow(1, len, mem);
}

DecoderExample AutoencodingExample(int num_slots, const std::vector<int>& text, int eos_id) {
  DecoderExample e;
  e.pieces.push_back({DecoderPiece::kSlots, {}, num_slots});
  e.pieces.push_back({DecoderPiece::kSpecial, {}, 0, SpecialToken::kAe});
  e.pieces.push_back({DecoderPiece::kTokens, text});
  // Slots predict nothing; the AE token predicts text[0]; text[i] predicts text[i + 1]; the last
  // text token predicts EOS.
  e.labels.assign(num_slots, kIgnore);
  e.labels.insert(e.labels.end(), text.begin(), text.end());
  e.labels.push_back(eos_id);
  return e;
}

DecoderExample ContinuationExample(int num_slots, const std::vector<int>& continuation) {
  DecoderExample e;
  e.pieces.push_back({DecoderPiece::kSlots, {}, num_slots});
  e.pieces.push_back({DecoderPiece::kTokens, continuation});
  e.labels.assign(num_slots - 1, kIgnore);
  e.labels.insert(e.labels.end(), continuation.begin(), continuation.end());
  e.labels.push_back(kIgnore);  // The last token has no next one here.
  return e;
}

absl::StatusOr<DecoderExample> FinetuneExample(PromptTemplate tmpl, int num_slots,
                                               const std::vector<int>& prompt,
                                               const std::vector<int>& answer,
                                               const std::vector<int>& inst_open,
                                               const std::vector<int>& inst_close, int bos_id,
                                               int eos_id) {
  DecoderExample e;
  auto tokens = [&](std::vector<int> ids) {
    if (!ids.empty()) e.pieces.push_back({DecoderPiece::kTokens, std::move(ids)});
  };
  auto special = [&](SpecialToken s) { e.pieces.push_back({DecoderPiece::kSpecial, {}, 0, s}); };
  switch (tmpl) {
    case PromptTemplate::kIcaeV2Instruct: {
      std::vector<int> open = {bos_id};
      open.insert(open.end(), inst_open.begin(), inst_open.end());
      tokens(open);
      e.pieces.push_back({DecoderPiece::kSlots, {}, num_slots});
      special(SpecialToken::kFt);
      tokens(prompt);
      tokens(inst_close);
      break;
    }
    case PromptTemplate::kIcaeV1:
      e.pieces.push_back({DecoderPiece::kSlots, {}, num_slots});
      special(SpecialToken::kFt);
      tokens(prompt);
      special(SpecialToken::kFt);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("fine-tuning uses the icae-v2-instruct or "
                       "icae-v1 template, not ",
                       PromptTemplateName(tmpl)));
  }
  int prompt_len = 0;
  for (const DecoderPiece& p : e.pieces) {
    prompt_len += p.kind == DecoderPiece::kTokens  ? static_cast<int>(p.ids.size())
                  : p.kind == DecoderPiece::kSlots ? p.num_slots
                                                   : 1;
  }
  tokens(answer);
  // Position prompt_len - 1 (the last prompt position) predicts answer[0]; the last answer token
  // predicts EOS.
  e.labels.assign(prompt_len - 1, kIgnore);
  e.labels.insert(e.labels.end(), answer.begin(), answer.end());
  e.labels.push_back(eos_id);
  return e;
}

at::Tensor AssembleEmbeds(const Transformer& base, const IcaeTrainables& icae,
                          const DecoderExample& example, const at::Tensor& slots) {
  const int mem = icae.config.mem_size;
  std::vector<at::Tensor> parts;
  int64_t slot_offset = 0;
  for (const DecoderPiece& p : example.pieces) {
    switch (p.kind) {
      case DecoderPiece::kTokens:
        parts.push_back(
            base.Embed(at::tensor(std::vector<int64_t>(p.ids.begin(), p.ids.end()), at::kLong)));
        break;
      case DecoderPiece::kSlots:
        parts.push_back(slots.narrow(0, slot_offset, p.num_slots).to(base.dtype()));
        slot_offset += p.num_slots;
        break;
      case DecoderPiece::kSpecial:
        parts.push_back(
            icae.memory_embed.narrow(0, mem + static_cast<int>(p.special), 1).to(base.dtype()));
        break;
    }
  }
  return at::cat(parts, 0);  // [length, hidden]
}

DecoderLossResult DecoderLoss(const Transformer& base, const at::Tensor& embeds,
                              const at::Tensor& labels) {
  const int64_t batch = embeds.size(0), len = embeds.size(1);
  at::Tensor positions = at::arange(len, at::kLong).unsqueeze(0).expand({batch, len});
  at::Tensor logits = base.Logits(base.Forward(embeds, positions));  // [batch, len, vocab]
  logits = logits.reshape({-1, logits.size(-1)});
  at::Tensor flat_labels = labels.reshape({-1});
  at::Tensor labelled = flat_labels.ne(kIgnore);
  DecoderLossResult r;
  r.count = labelled.sum().item<int64_t>();
  r.correct = (logits.detach().argmax(-1).eq(flat_labels) & labelled).sum().item<int64_t>();
  r.loss_sum = at::cross_entropy_loss(logits, flat_labels, {}, at::Reduction::Sum, kIgnore);
  return r;
}

std::vector<at::Tensor> EncodeContexts(const Transformer& base, const IcaeTrainables& icae,
                                       const std::vector<std::vector<int>>& contexts) {
  const int mem = icae.config.mem_size;
  // (sample, segment index, begin, end) grouped by segment length.
  std::map<int, std::vector<std::array<int, 3>>> by_length;
  std::vector<int> num_segments(contexts.size());
  for (size_t i = 0; i < contexts.size(); ++i) {
    SegmentPlan plan =
        PlanSegments(static_cast<int>(contexts[i].size()), mem, icae.config.compression_rate);
    num_segments[i] = plan.num_segments;
    for (int s = 0; s < plan.num_segments; ++s) {
      const auto [begin, end] = plan.ranges[s];
      by_length[end - begin].push_back({static_cast<int>(i), s, begin});
    }
  }
  std::vector<std::vector<at::Tensor>> pieces(contexts.size());
  for (size_t i = 0; i < contexts.size(); ++i) pieces[i].resize(num_segments[i]);
  for (const auto& [length, members] : by_length) {
    std::vector<int64_t> flat;
    for (const auto& [sample, segment, begin] : members) {
      flat.insert(flat.end(), contexts[sample].begin() + begin,
                  contexts[sample].begin() + begin + length);
    }
    at::Tensor ids =
        at::tensor(flat, at::kLong).view({static_cast<int64_t>(members.size()), length});
    at::Tensor slots = EncodeSegments(base, icae, ids);  // [members, mem, hidden]
    for (size_t m = 0; m < members.size(); ++m) {
      pieces[members[m][0]][members[m][1]] = slots[m];
    }
  }
  std::vector<at::Tensor> out;
  for (auto& p : pieces) out.push_back(at::cat(p, 0));
  return out;
}

BatchLoss ExamplesLoss(const Transformer& base, const IcaeTrainables& icae,
                       const std::vector<DecoderExample>& examples,
                       const std::vector<at::Tensor>& slots) {
  int64_t longest = 0;
  for (const DecoderExample& e : examples) longest = std::max<int64_t>(longest, e.length());
  const int64_t batch = examples.size();
  std::vector<at::Tensor> rows;
  std::vector<int64_t> labels(batch * longest, kIgnore);
  for (int64_t b = 0; b < batch; ++b) {
    at::Tensor e = AssembleEmbeds(base, icae, examples[b], slots[b]);  // [len, hidden]
    const int64_t pad = longest - e.size(0);
    if (pad > 0) e = at::cat({e, at::zeros({pad, e.size(1)}, e.options())}, 0);
    rows.push_back(e);
    std::copy(examples[b].labels.begin(), examples[b].labels.end(), labels.begin() + b * longest);
  }
  // Right padding needs no mask: causal attention keeps real positions from seeing it.
  DecoderLossResult r =
      DecoderLoss(base, at::stack(rows, 0), at::tensor(labels, at::kLong).view({batch, longest}));
  BatchLoss out;
  out.labelled = r.count;
  out.correct = r.correct;
  out.positions = batch * longest;
  out.mean_loss = r.loss_sum / static_cast<double>(std::max<int64_t>(1, r.count));
  return out;
}

}  // namespace icae::train
