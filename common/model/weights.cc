#include "common/model/weights.h"

#include <sys/stat.h>

#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/mapped_file.h"
#include "common/model/tensor_io.h"
#include "common/model/torch_status.h"

namespace icae {
namespace {

std::string LayerName(int layer, const char* suffix) {
  return absl::StrCat("model.layers.", layer, ".", suffix);
}

constexpr const char* kLayerTensors[] = {
    "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};

absl::Status CheckNoUnknownTensors(const Checkpoint& checkpoint, const ModelConfig& config) {
  std::set<std::string> known = {"model.embed_tokens.weight", "model.norm.weight",
                                 "lm_head.weight"};
  for (int l = 0; l < config.num_layers; ++l) {
    for (const char* t : kLayerTensors) known.insert(LayerName(l, t));
  }
  for (const std::string& name : checkpoint.Names()) {
    if (known.count(name)) continue;
    if (absl::EndsWith(name, "rotary_emb.inv_freq")) continue;  // Recomputed from rope_theta.
    return absl::InvalidArgumentError(absl::StrCat(checkpoint.source(), ": unexpected tensor '",
                                                   name, "' (not part of a ", config.architecture,
                                                   " with ", config.num_layers, " layers)"));
  }
  return absl::OkStatus();
}

// Loads one linear weight [out, in] in float32 when a LoRA delta must be merged, else in `dtype`.
absl::StatusOr<at::Tensor> LoadLinear(const Checkpoint& checkpoint, const std::string& name,
                                      int64_t out, int64_t in, const LoraPair* delta,
                                      double scaling, at::ScalarType dtype) {
  if (delta == nullptr) return LoadTensor(checkpoint, name, dtype, {out, in});
  ASSIGN_OR_RETURN(at::Tensor w, LoadTensor(checkpoint, name, at::kFloat, {out, in}));
  // W' = W + scaling * B @ A, in float32, then cast once.
  return (w + at::mm(delta->b, delta->a) * scaling).to(dtype);
}

const LoraPair* FindDelta(const Adapter* lora, int layer, const char* module) {
  if (lora == nullptr || lora->lora.empty()) return nullptr;
  auto it = lora->lora[layer].find(module);
  return it == lora->lora[layer].end() ? nullptr : &it->second;
}

}  // namespace

std::vector<at::Tensor> TransformerWeights::Parameters(bool tied) const {
  std::vector<at::Tensor> params = {embed};
  for (const LayerWeights& l : layers) {
    params.insert(params.end(), {l.input_norm, l.wqkv, l.wo, l.post_norm, l.w_gate_up, l.w_down});
  }
  params.push_back(final_norm);
  if (!tied) params.push_back(lm_head);
  return params;
}

absl::StatusOr<TransformerWeights> LoadWeights(const std::string& dir, const ModelConfig& config,
                                               const Adapter* lora, at::ScalarType dtype,
                                               at::Device device) {
  ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::OpenDirectory(dir));
  RETURN_IF_ERROR(CheckNoUnknownTensors(checkpoint, config));
  return CatchTorch("loading weights", [&]() -> absl::StatusOr<TransformerWeights> {
    const int64_t h = config.hidden_size, q = config.q_dim(), kv = config.kv_dim(),
                  inter = config.intermediate_size, vocab = config.vocab_size;
    const double scaling = lora ? lora->config.scaling() : 0.0;
    auto to_device = [&](const at::Tensor& t) { return t.to(device, dtype).contiguous(); };
    TransformerWeights w;
    ASSIGN_OR_RETURN(at::Tensor embed,
                     LoadTensor(checkpoint, "model.embed_tokens.weight", dtype, {vocab, h}));
    w.embed = to_device(embed);
    for (int l = 0; l < config.num_layers; ++l) {
      LayerWeights layer;
      ASSIGN_OR_RETURN(at::Tensor in_norm,
                       LoadTensor(checkpoint, LayerName(l, "input_layernorm.weight"), dtype, {h}));
      ASSIGN_OR_RETURN(
          at::Tensor post_norm,
          LoadTensor(checkpoint, LayerName(l, "post_attention_layernorm.weight"), dtype, {h}));
      struct Spec {
        const char* name;
        const char* module;
        int64_t out, in;
      };
      const Spec specs[] = {{"self_attn.q_proj.weight", "q_proj", q, h},
                            {"self_attn.k_proj.weight", "k_proj", kv, h},
                            {"self_attn.v_proj.weight", "v_proj", kv, h},
                            {"self_attn.o_proj.weight", "o_proj", h, q},
                            {"mlp.gate_proj.weight", "gate_proj", inter, h},
                            {"mlp.up_proj.weight", "up_proj", inter, h},
                            {"mlp.down_proj.weight", "down_proj", h, inter}};
      at::Tensor m[7];
      for (int i = 0; i < 7; ++i) {
        ASSIGN_OR_RETURN(
            m[i], LoadLinear(checkpoint, LayerName(l, specs[i].name), specs[i].out, specs[i].in,
                             FindDelta(lora, l, specs[i].module), scaling, dtype));
      }
      layer.input_norm = to_device(in_norm);
      layer.post_norm = to_device(post_norm);
      layer.wqkv = to_device(at::cat({m[0], m[1], m[2]}, 0));
      layer.wo = to_device(m[3]);
      layer.w_gate_up = to_device(at::cat({m[4], m[5]}, 0));
      layer.w_down = to_device(m[6]);
      w.layers.push_back(std::move(layer));
    }
    ASSIGN_OR_RETURN(at::Tensor norm, LoadTensor(checkpoint, "model.norm.weight", dtype, {h}));
    w.final_norm = to_device(norm);
    if (config.tie_word_embeddings) {
      w.lm_head = w.embed;
    } else {
      ASSIGN_OR_RETURN(at::Tensor head,
                       LoadTensor(checkpoint, "lm_head.weight", dtype, {vocab, h}));
      w.lm_head = to_device(head);
    }
    return w;
  });
}

TransformerWeights MapWeights(const TransformerWeights& w, bool tied,
                              const std::function<at::Tensor(const at::Tensor&)>& f) {
  TransformerWeights out;
  out.embed = f(w.embed);
  for (const LayerWeights& l : w.layers) {
    out.layers.push_back(LayerWeights{f(l.input_norm), f(l.wqkv), f(l.wo), f(l.post_norm),
                                      f(l.w_gate_up), f(l.w_down)});
  }
  out.final_norm = f(w.final_norm);
  out.lm_head = tied ? out.embed : f(w.lm_head);
  return out;
}

TransformerWeights CloneWeights(const TransformerWeights& w, bool tied) {
  return MapWeights(w, tied, [](const at::Tensor& t) { return t.detach().clone(); });
}

TransformerWeights RandomWeights(const ModelConfig& config, uint64_t seed, double std) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](std::initializer_list<int64_t> shape) {
    return at::normal(0.0, std, at::IntArrayRef(shape), gen, at::TensorOptions().dtype(at::kFloat));
  };
  const int64_t h = config.hidden_size, q = config.q_dim(), kv = config.kv_dim(),
                inter = config.intermediate_size, vocab = config.vocab_size;
  TransformerWeights w;
  w.embed = normal({vocab, h});
  for (int l = 0; l < config.num_layers; ++l) {
    LayerWeights layer;
    layer.input_norm = at::ones({h});
    layer.wqkv = normal({q + 2 * kv, h});
    layer.wo = normal({h, q});
    layer.post_norm = at::ones({h});
    layer.w_gate_up = normal({2 * inter, h});
    layer.w_down = normal({h, inter});
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = at::ones({h});
  w.lm_head = config.tie_word_embeddings ? w.embed : normal({vocab, h});
  return w;
}

absl::Status SaveHfModel(const std::string& dir, const ModelConfig& config,
                         const TransformerWeights& weights, at::ScalarType dtype) {
  ::mkdir(dir.c_str(), 0755);
  ModelConfig saved = config;
  saved.torch_dtype = dtype == at::kBFloat16 ? "bfloat16"
                      : dtype == at::kHalf   ? "float16"
                                             : "float32";
  RETURN_IF_ERROR(WriteStringToFile(JoinPath(dir, "config.json"), ModelConfigToJson(saved)));
  return CatchTorch("saving weights", [&]() -> absl::Status {
    SafetensorsWriter writer;
    writer.SetMetadata("format", "pt");
    auto add = [&](const std::string& name, const at::Tensor& t) {
      return AddTensor(writer, name, t.detach().to(at::kCPU, dtype).contiguous());
    };
    const int64_t q = config.q_dim(), kv = config.kv_dim(), inter = config.intermediate_size;
    RETURN_IF_ERROR(add("model.embed_tokens.weight", weights.embed));
    for (int l = 0; l < config.num_layers; ++l) {
      const LayerWeights& layer = weights.layers[l];
      RETURN_IF_ERROR(add(LayerName(l, "input_layernorm.weight"), layer.input_norm));
      RETURN_IF_ERROR(add(LayerName(l, "self_attn.q_proj.weight"), layer.wqkv.narrow(0, 0, q)));
      RETURN_IF_ERROR(add(LayerName(l, "self_attn.k_proj.weight"), layer.wqkv.narrow(0, q, kv)));
      RETURN_IF_ERROR(
          add(LayerName(l, "self_attn.v_proj.weight"), layer.wqkv.narrow(0, q + kv, kv)));
      RETURN_IF_ERROR(add(LayerName(l, "self_attn.o_proj.weight"), layer.wo));
      RETURN_IF_ERROR(add(LayerName(l, "post_attention_layernorm.weight"), layer.post_norm));
      RETURN_IF_ERROR(
          add(LayerName(l, "mlp.gate_proj.weight"), layer.w_gate_up.narrow(0, 0, inter)));
      RETURN_IF_ERROR(
          add(LayerName(l, "mlp.up_proj.weight"), layer.w_gate_up.narrow(0, inter, inter)));
      RETURN_IF_ERROR(add(LayerName(l, "mlp.down_proj.weight"), layer.w_down));
    }
    RETURN_IF_ERROR(add("model.norm.weight", weights.final_norm));
    if (!config.tie_word_embeddings) RETURN_IF_ERROR(add("lm_head.weight", weights.lm_head));
    return writer.WriteFile(JoinPath(dir, "model.safetensors"));
  });
}

}  // namespace icae
