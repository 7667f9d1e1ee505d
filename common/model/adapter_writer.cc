#include "common/model/adapter_writer.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/io/safetensors_writer.h"
#include "common/model/tensor_io.h"
#include "common/model/torch_status.h"
#include "nlohmann/json.hpp"

namespace icae {
namespace {

std::string LoraName(int layer, const std::string& module, bool a) {
  const bool mlp = module == "gate_proj" || module == "up_proj" || module == "down_proj";
  return absl::StrCat("icae.base_model.model.model.layers.", layer, mlp ? ".mlp." : ".self_attn.",
                      module, a ? ".lora_A" : ".lora_B", ".default.weight");
}

}  // namespace

absl::Status SaveIcaeAdapter(const std::string& dir, const Adapter& adapter,
                             const std::string& base_model_name) {
  ::mkdir(dir.c_str(), 0755);
  const AdapterConfig& c = adapter.config;
  RETURN_IF_ERROR(CatchTorch("saving the adapter", [&]() -> absl::Status {
    SafetensorsWriter writer;
    writer.SetMetadata("format", "pt");
    for (size_t layer = 0; layer < adapter.lora.size(); ++layer) {
      for (const auto& [module, pair] : adapter.lora[layer]) {
        RETURN_IF_ERROR(AddTensor(writer, LoraName(layer, module, true), pair.a.to(at::kFloat)));
        RETURN_IF_ERROR(AddTensor(writer, LoraName(layer, module, false), pair.b.to(at::kFloat)));
      }
    }
    RETURN_IF_ERROR(
        AddTensor(writer, "memory_token_embed.weight", adapter.memory_embed.to(at::kFloat)));
    return writer.WriteFile(JoinPath(dir, "adapter.safetensors"));
  }));
  nlohmann::json config = {
      {"format", "icae-v2-adapter"},
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model", base_model_name},
      {"r", c.r},
      {"lora_alpha", c.lora_alpha},
      {"scaling", c.scaling()},
      {"bias", "none"},
      {"target_modules", c.target_modules},
      {"mem_size", c.mem_size},
      {"mean_compression_rate", c.compression_rate},
      {"memory_token_embed_rows",
       {{"mem_slots", {0, c.mem_size}},
        {"ae", c.mem_size},
        {"lm", c.mem_size + 1},
        {"ft", c.mem_size + 2}}},
  };
  if (c.memory_positions != MemoryPositions::kAppend) {
    config["memory_position_layout"] = std::string(MemoryPositionsName(c.memory_positions));
  }
  if (c.slot_kind != SlotKind::kEmbedding) config["slot_kind"] = std::string(SlotKindName(c.slot_kind));
  return WriteStringToFile(JoinPath(dir, "adapter_config.json"), config.dump(2) + "\n");
}

Adapter RandomAdapter(const ModelConfig& model, const AdapterConfig& config, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](int64_t rows, int64_t cols) {
    return at::normal(0.0, 0.02, {rows, cols}, gen, at::TensorOptions().dtype(at::kFloat));
  };
  Adapter adapter;
  adapter.config = config;
  adapter.lora.resize(model.num_layers);
  for (int layer = 0; layer < model.num_layers; ++layer) {
    for (const std::string& module : config.target_modules) {
      auto shape = ModuleShape(model, module);
      if (!shape.ok()) continue;
      adapter.lora[layer][module] =
          LoraPair{normal(config.r, shape->first), normal(shape->second, config.r)};
    }
  }
  adapter.memory_embed = normal(config.mem_size + 3, model.hidden_size);
  return adapter;
}

}  // namespace icae
