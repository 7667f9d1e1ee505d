#include "common/model/adapter.h"

#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/logging.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/tensor_io.h"
#include "nlohmann/json.hpp"

namespace icae {
namespace {

using nlohmann::json;

constexpr char kMemoryEmbedName[] = "memory_token_embed.weight";

absl::StatusOr<std::string> ResolveAdapterFile(const std::string& path) {
  if (FileExists(path)) return path;
  for (const char* name : {"adapter.safetensors", "adapter_model.safetensors"}) {
    std::string candidate = JoinPath(path, name);
    if (FileExists(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("adapter not found: ", path,
                                          " (a .safetensors file, or a directory with "
                                          "adapter.safetensors or adapter_model.safetensors)"));
}

std::string ConfigPathFor(const std::string& file) {
  const size_t slash = file.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : file.substr(0, slash);
  return JoinPath(dir, "adapter_config.json");
}

absl::Status ParseAdapterConfig(const std::string& text, const std::string& source,
                                AdapterConfig* config) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  auto number = [&](const char* key, double* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number() || it->get<double>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"", key, "\" must be a positive number"));
    }
    *out = it->get<double>();
    return absl::OkStatus();
  };
  double r = config->r, alpha = config->lora_alpha, mem = config->mem_size,
         rate = config->compression_rate;
  RETURN_IF_ERROR(number("r", &r));
  RETURN_IF_ERROR(number("lora_alpha", &alpha));
  RETURN_IF_ERROR(number("mem_size", &mem));
  RETURN_IF_ERROR(number("fixed_mem_size", &mem));
  RETURN_IF_ERROR(number("mean_compression_rate", &rate));
  config->r = static_cast<int>(r);
  config->lora_alpha = alpha;
  config->mem_size = static_cast<int>(mem);
  config->compression_rate = static_cast<int>(rate);
  if (auto it = j.find("target_modules"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"target_modules\" must be a list of module names"));
    }
    config->target_modules.clear();
    for (const json& m : *it) {
      if (!m.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": bad entry in \"target_modules\""));
      }
      config->target_modules.push_back(m.get<std::string>());
    }
  }
  if (auto it = j.find("memory_position_layout"); it != j.end() && !it->is_null()) {
    absl::StatusOr<MemoryPositions> layout =
        it->is_string() ? ParseMemoryPositions(it->get<std::string>())
                        : absl::InvalidArgumentError("not a string");
    if (!layout.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": \"memory_position_layout\" must be \"append\" or \"uniform\""));
    }
    config->memory_positions = *layout;
  }
  if (auto it = j.find("slot_kind"); it != j.end() && !it->is_null()) {
    absl::StatusOr<SlotKind> kind = it->is_string() ? ParseSlotKind(it->get<std::string>())
                                                    : absl::InvalidArgumentError("not a string");
    if (!kind.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"slot_kind\" must be \"embedding\" or \"kv\""));
    }
    config->slot_kind = *kind;
  }
  if (auto it = j.find("use_dora"); it != j.end() && it->is_boolean() && it->get<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": DoRA adapters are not supported"));
  }
  if (auto it = j.find("use_rslora"); it != j.end() && it->is_boolean() && it->get<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": rsLoRA scaling is not supported"));
  }
  return absl::OkStatus();
}

struct LoraKey {
  int layer;
  std::string module;
  bool is_a;
};

std::optional<LoraKey> ParseLoraKey(const std::string& name) {
  static const std::regex kPattern(
      R"(^(?:icae\.)?base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+_proj)\.lora_([AB])(?:\.default)?\.weight$)");
  std::smatch m;
  if (!std::regex_match(name, m, kPattern)) return std::nullopt;
  return LoraKey{std::stoi(m[1].str()), m[3].str(), m[4].str() == "A"};
}

}  // namespace

absl::StatusOr<std::pair<int, int>> ModuleShape(const ModelConfig& c, const std::string& module) {
  if (module == "q_proj") return std::make_pair(c.hidden_size, c.q_dim());
  if (module == "k_proj" || module == "v_proj") return std::make_pair(c.hidden_size, c.kv_dim());
  if (module == "o_proj") return std::make_pair(c.q_dim(), c.hidden_size);
  if (module == "gate_proj" || module == "up_proj") {
    return std::make_pair(c.hidden_size, c.intermediate_size);
  }
  if (module == "down_proj") return std::make_pair(c.intermediate_size, c.hidden_size);
  return absl::InvalidArgumentError(absl::StrCat("target module '", module,
                                                 "' does not exist in the model (q_proj, k_proj, "
                                                 "v_proj, o_proj, gate_proj, up_proj, down_proj)"));
}

at::Tensor Adapter::SpecialEmbedding(SpecialToken token) const {
  return memory_embed[config.mem_size + static_cast<int>(token)];
}

absl::string_view MemoryPositionsName(MemoryPositions p) {
  return p == MemoryPositions::kUniform ? "uniform" : "append";
}

absl::StatusOr<MemoryPositions> ParseMemoryPositions(absl::string_view name) {
  if (name == "append") return MemoryPositions::kAppend;
  if (name == "uniform") return MemoryPositions::kUniform;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown memory position layout '", name, "' (append, uniform)"));
}

at::Tensor Adapter::MemoryEmbeddings() const { return memory_embed.narrow(0, 0, config.mem_size); }

absl::StatusOr<Adapter> LoadAdapter(const std::string& path, const ModelConfig& model,
                                    bool with_lora) {
  Adapter adapter;
  ASSIGN_OR_RETURN(adapter.path, ResolveAdapterFile(path));
  ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::OpenFile(adapter.path));
  const std::string& file = adapter.path;
  AdapterConfig& config = adapter.config;

  // Tensors first: they give the defaults for a file that comes without a config.
  std::map<std::pair<int, std::string>,
           std::pair<const Checkpoint::Entry*, const Checkpoint::Entry*>>
      pairs;
  const Checkpoint::Entry* memory = nullptr;
  for (const std::string& name : checkpoint.Names()) {
    const Checkpoint::Entry* entry = checkpoint.Find(name);
    if (name == kMemoryEmbedName) {
      memory = entry;
      continue;
    }
    std::optional<LoraKey> key = ParseLoraKey(name);
    if (!key) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": unexpected tensor '", name,
          "' (an adapter holds only LoRA A/B matrices and memory_token_embed.weight)"));
    }
    if (key->layer >= model.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", name, "' is for layer ",
                                                     key->layer, " but the model has ",
                                                     model.num_layers, " layers"));
    }
    auto& slot = pairs[{key->layer, key->module}];
    (key->is_a ? slot.first : slot.second) = entry;
  }
  if (memory == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": missing tensor '", kMemoryEmbedName, "'"));
  }
  if (memory->info->shape.size() != 2 || memory->info->shape[0] < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": tensor '", kMemoryEmbedName, "' must be [mem_size + 3, hidden]"));
  }
  std::set<std::string> modules_in_file;
  for (const auto& [key, entries] : pairs) modules_in_file.insert(key.second);

  // Effective config: defaults of the released ICAE v2 files, then adapter_config.json.
  config.mem_size = static_cast<int>(memory->info->shape[0]) - 3;
  config.lora_alpha = 32;
  config.compression_rate = 4;
  config.target_modules.assign(modules_in_file.begin(), modules_in_file.end());
  if (!pairs.empty() && pairs.begin()->second.first != nullptr) {
    config.r = static_cast<int>(pairs.begin()->second.first->info->shape[0]);
  }
  const std::string config_path = ConfigPathFor(file);
  std::string config_text;
  if (FileExists(config_path)) {
    ASSIGN_OR_RETURN(config_text, ReadFileToString(config_path));
    RETURN_IF_ERROR(ParseAdapterConfig(config_text, config_path, &config));
  } else {
    ICAE_LOG(WARNING) << file
                      << ": no adapter_config.json beside it; assuming the released ICAE v2 "
                      << "values lora_alpha=" << config.lora_alpha << " r=" << config.r
                      << " mem_size=" << config.mem_size << " rate=" << config.compression_rate;
  }
  if (config.mem_size + 3 != memory->info->shape[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": tensor '", kMemoryEmbedName, "' has ", memory->info->shape[0],
                     " rows but mem_size ", config.mem_size, " needs ", config.mem_size + 3));
  }
  if (memory->info->shape[1] != model.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": tensor '", kMemoryEmbedName, "' has hidden size ", memory->info->shape[1],
        " but the model's hidden_size is ", model.hidden_size));
  }
  if (config.compression_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": compression rate must be positive"));
  }
  adapter.memory_embed = EntryToTensor(*memory, at::kFloat).clone();

  // Every target module must exist in the model and have A and B in every layer; nothing else.
  for (const std::string& module : config.target_modules) {
    ASSIGN_OR_RETURN(auto shape, ModuleShape(model, module));
    (void)shape;
  }
  std::set<std::string> targets(config.target_modules.begin(), config.target_modules.end());
  for (const std::string& module : modules_in_file) {
    if (!targets.count(module)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": holds LoRA tensors for '", module,
                       "', which adapter_config.json does not target"));
    }
  }
  if (with_lora) adapter.lora.resize(model.num_layers);
  for (int layer = 0; layer < model.num_layers; ++layer) {
    for (const std::string& module : config.target_modules) {
      const std::string prefix = absl::StrCat(
          "base_model.model.model.layers.", layer, ".",
          (module == "gate_proj" || module == "up_proj" || module == "down_proj") ? "mlp."
                                                                                  : "self_attn.",
          module);
      auto it = pairs.find({layer, module});
      if (it == pairs.end() || it->second.first == nullptr || it->second.second == nullptr) {
        const bool has_a = it != pairs.end() && it->second.first != nullptr;
        return absl::InvalidArgumentError(absl::StrCat(file, ": missing tensor '", prefix,
                                                       has_a ? ".lora_B" : ".lora_A",
                                                       ".weight' (layer ", layer, ")"));
      }
      const TensorInfo& a = *it->second.first->info;
      const TensorInfo& b = *it->second.second->info;
      ASSIGN_OR_RETURN(auto in_out, ModuleShape(model, module));
      const std::vector<int64_t> want_a = {config.r, in_out.first};
      const std::vector<int64_t> want_b = {in_out.second, config.r};
      if (a.shape != want_a) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": tensor '", a.name, "' has shape [", absl::StrJoin(a.shape, ","),
                         "], expected [", absl::StrJoin(want_a, ","), "] (r=", config.r,
                         ", in_features=", in_out.first, ")"));
      }
      if (b.shape != want_b) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": tensor '", b.name, "' has shape [", absl::StrJoin(b.shape, ","),
                         "], expected [", absl::StrJoin(want_b, ","),
                         "] (out_features=", in_out.second, ", r=", config.r, ")"));
      }
      if (with_lora) {
        adapter.lora[layer][module] = LoraPair{EntryToTensor(*it->second.first, at::kFloat),
                                               EntryToTensor(*it->second.second, at::kFloat)};
      }
    }
  }
  if (config.r <= 0 && !config.target_modules.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": LoRA rank r must be positive"));
  }

  // Fingerprint: the adapter's bytes and the configuration that interprets them.
  Sha256 hasher;
  ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(file));
  hasher.UpdateField(
      absl::string_view(reinterpret_cast<const char*>(mapping->data()), mapping->size()));
  hasher.UpdateField(absl::StrCat("r=", config.r, ";alpha=", config.lora_alpha,
                                  ";mem=", config.mem_size, ";rate=", config.compression_rate,
                                  ";targets=", absl::StrJoin(config.target_modules, ","),
                                  config.memory_positions == MemoryPositions::kAppend
                                      ? std::string()
                                      : absl::StrCat(";memory_positions=",
                                                     MemoryPositionsName(config.memory_positions)),
                                  config.slot_kind == SlotKind::kEmbedding
                                      ? std::string()
                                      : absl::StrCat(";slot_kind=", SlotKindName(config.slot_kind))));
  adapter.fingerprint = hasher.HexDigest();
  return adapter;
}

}  // namespace icae
