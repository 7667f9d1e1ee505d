#include "common/model/cross_encoder.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/model/fingerprint.h"
#include "common/model/tensor_io.h"
#include "common/model/torch_status.h"
#include "nlohmann/json.hpp"

namespace icae {
namespace {

using nlohmann::json;

constexpr char kFormat[] = "icae-cross-encoder";

absl::Status ParseConfig(const std::string& text, const std::string& source,
                         CrossEncoderConfig* c) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  auto bad = [&](const char* key, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"", key, "\" ", why));
  };
  auto positive = [&](const char* key, int* out, bool required) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return required ? bad(key, "is required") : absl::OkStatus();
    if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1 << 24)) {
      return bad(key, "must be a positive integer");
    }
    *out = static_cast<int>(it->get<int64_t>());
    return absl::OkStatus();
  };
  auto string = [&](const char* key, std::string* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) {
      return bad(key, "must be a non-empty string");
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  if (j.value("format", std::string()) != kFormat) {
    return bad("format", absl::StrCat("must be \"", kFormat, "\""));
  }
  RETURN_IF_ERROR(positive("mem_size", &c->mem_size, true));
  RETURN_IF_ERROR(positive("compression_rate", &c->compression_rate, true));
  RETURN_IF_ERROR(positive("encoder_hidden_size", &c->encoder_hidden, true));
  RETURN_IF_ERROR(positive("decoder_hidden_size", &c->decoder_hidden, true));
  std::string name;
  RETURN_IF_ERROR(string("projector", &name));
  absl::StatusOr<ProjectorKind> projector = ParseProjectorKind(name);
  if (!projector.ok()) return bad("projector", "must be \"linear\" or \"mlp\"");
  c->projector = *projector;
  if (c->projector == ProjectorKind::kMlp) {
    RETURN_IF_ERROR(positive("projector_hidden_size", &c->projector_hidden, true));
  }
  if (auto it = j.find("memory_position_layout"); it != j.end() && !it->is_null()) {
    absl::StatusOr<MemoryPositions> layout =
        it->is_string() ? ParseMemoryPositions(it->get<std::string>())
                        : absl::InvalidArgumentError("not a string");
    if (!layout.ok()) return bad("memory_position_layout", "must be \"append\" or \"uniform\"");
    c->memory_positions = *layout;
  }
  RETURN_IF_ERROR(string("encoder_model_fingerprint", &c->encoder_fingerprint));
  RETURN_IF_ERROR(string("decoder_base_fingerprint", &c->decoder_fingerprint));
  RETURN_IF_ERROR(string("encoder_model", &c->encoder_model));
  if (auto it = j.find("encoder_weights_sha256"); it != j.end() && !it->is_null()) {
    const bool hex = it->is_string() && it->get<std::string>().size() == 64 &&
                     it->get<std::string>().find_first_not_of("0123456789abcdef") ==
                         std::string::npos;
    if (!hex) return bad("encoder_weights_sha256", "must be 64 lowercase hex digits");
    c->encoder_weights_sha256 = it->get<std::string>();
  }
  if (c->encoder_model.front() == '/' || c->encoder_model.find("..") != std::string::npos) {
    return bad("encoder_model", "must be a path inside the package");
  }
  return absl::OkStatus();
}

std::string ConfigJson(const CrossEncoderConfig& c) {
  json j = {{"format", kFormat},
            {"mem_size", c.mem_size},
            {"compression_rate", c.compression_rate},
            {"memory_position_layout", std::string(MemoryPositionsName(c.memory_positions))},
            {"projector", std::string(ProjectorKindName(c.projector))},
            {"encoder_hidden_size", c.encoder_hidden},
            {"decoder_hidden_size", c.decoder_hidden},
            {"encoder_model_fingerprint", c.encoder_fingerprint},
            {"decoder_base_fingerprint", c.decoder_fingerprint},
            {"encoder_model", c.encoder_model}};
  if (c.projector == ProjectorKind::kMlp) j["projector_hidden_size"] = c.projector_hidden;
  if (!c.encoder_weights_sha256.empty()) j["encoder_weights_sha256"] = c.encoder_weights_sha256;
  return j.dump(2) + "\n";
}

// Tensor names and shapes the config implies, in Parameters order.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(
    const CrossEncoderConfig& c) {
  const int64_t first = c.projector == ProjectorKind::kMlp ? c.projector_hidden : c.decoder_hidden;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t = {
      {"memory_embed", {c.mem_size, c.encoder_hidden}},
      {"special_embed", {3, c.decoder_hidden}},
      {"projector.0.weight", {first, c.encoder_hidden}},
      {"projector.0.bias", {first}}};
  if (c.projector == ProjectorKind::kMlp) {
    t.push_back({"projector.2.weight", {c.decoder_hidden, c.projector_hidden}});
    t.push_back({"projector.2.bias", {c.decoder_hidden}});
  }
  return t;
}

}  // namespace

bool IsCrossEncoderPackage(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
         FileExists(JoinPath(path, kCrossEncoderConfigFile));
}

absl::string_view ProjectorKindName(ProjectorKind kind) {
  return kind == ProjectorKind::kLinear ? "linear" : "mlp";
}

absl::StatusOr<ProjectorKind> ParseProjectorKind(absl::string_view name) {
  if (name == "linear") return ProjectorKind::kLinear;
  if (name == "mlp") return ProjectorKind::kMlp;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown projector '", name, "' (expected linear or mlp)"));
}

absl::StatusOr<std::string> ModelWeightsSha256(const std::string& model_dir) {
  ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::OpenDirectory(model_dir));
  std::vector<std::string> paths;
  for (const auto& file : checkpoint.files()) paths.push_back(file->path());
  std::sort(paths.begin(), paths.end());
  Sha256 hasher;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(path));
    hasher.Update(mapping->data(), mapping->size());
  }
  return hasher.HexDigest();
}

std::string CrossEncoder::encoder_id() const {
  return EncoderId(config.encoder_fingerprint, fingerprint);
}

std::string CrossEncoder::encoder_model_dir() const { return JoinPath(path, config.encoder_model); }

AdapterConfig CrossEncoder::AsAdapterConfig() const {
  AdapterConfig a;
  a.mem_size = config.mem_size;
  a.compression_rate = config.compression_rate;
  a.memory_positions = config.memory_positions;
  a.slot_kind = SlotKind::kEmbedding;
  return a;
}

at::Tensor ProjectSlots(ProjectorKind kind, const std::vector<at::Tensor>& params,
                        const at::Tensor& x) {
  at::Tensor y = at::linear(x, params[0], params[1]);
  if (kind == ProjectorKind::kLinear) return y;
  return at::linear(at::gelu(y), params[2], params[3]);
}

absl::StatusOr<CrossEncoder> LoadCrossEncoder(const std::string& dir) {
  CrossEncoder cross;
  cross.path = dir;
  const std::string config_path = JoinPath(dir, kCrossEncoderConfigFile);
  ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  RETURN_IF_ERROR(ParseConfig(config_text, config_path, &cross.config));
  const std::string weights_path = JoinPath(dir, kCrossEncoderWeightsFile);
  ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::OpenFile(weights_path));
  const auto expected = ExpectedTensors(cross.config);
  std::set<std::string> known;
  for (const auto& [name, shape] : expected) known.insert(name);
  for (const std::string& name : checkpoint.Names()) {
    if (!known.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights_path, ": unexpected tensor '", name, "' for a ",
          ProjectorKindName(cross.config.projector), " projector"));
    }
  }
  std::vector<at::Tensor> tensors;
  for (const auto& [name, shape] : expected) {
    ASSIGN_OR_RETURN(at::Tensor t, LoadTensor(checkpoint, name, at::kFloat, shape));
    tensors.push_back(t.clone());
  }
  RETURN_IF_ERROR(CatchTorch("checking the cross encoder", [&]() -> absl::Status {
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!at::isfinite(tensors[i]).all().item<bool>()) {
        return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '",
                                                       expected[i].first, "' is not finite"));
      }
    }
    return absl::OkStatus();
  }));
  cross.memory_rows = tensors[0];
  cross.special = tensors[1];
  cross.projector.assign(tensors.begin() + 2, tensors.end());
  Sha256 hasher;
  hasher.UpdateField("icae-cross-encoder-v1");
  ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(weights_path));
  hasher.UpdateField(
      absl::string_view(reinterpret_cast<const char*>(mapping->data()), mapping->size()));
  hasher.UpdateField(ConfigJson(cross.config));  // Canonical: key order and spacing are ours.
  cross.fingerprint = hasher.HexDigest();
  return cross;
}

absl::Status SaveCrossEncoder(const std::string& dir, const CrossEncoder& cross) {
  ::mkdir(dir.c_str(), 0755);
  const auto expected = ExpectedTensors(cross.config);
  std::vector<at::Tensor> tensors = {cross.memory_rows, cross.special};
  tensors.insert(tensors.end(), cross.projector.begin(), cross.projector.end());
  if (tensors.size() != expected.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", ProjectorKindName(cross.config.projector), " projector has ",
                     expected.size() - 2, " tensors, not ", cross.projector.size()));
  }
  RETURN_IF_ERROR(CatchTorch("saving the cross encoder", [&]() -> absl::Status {
    SafetensorsWriter writer;
    writer.SetMetadata("format", "pt");
    for (size_t i = 0; i < tensors.size(); ++i) {
      at::Tensor t = tensors[i].detach().to(at::kFloat).contiguous();
      if (t.sizes().vec() != expected[i].second) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", expected[i].first, "' has the wrong shape"));
      }
      RETURN_IF_ERROR(AddTensor(writer, expected[i].first, t));
    }
    return writer.WriteFile(JoinPath(dir, kCrossEncoderWeightsFile));
  }));
  return WriteStringToFile(JoinPath(dir, kCrossEncoderConfigFile), ConfigJson(cross.config));
}

}  // namespace icae
