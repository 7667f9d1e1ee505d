#include "common/io/safetensors_writer.h"

#include "absl/strings/str_cat.h"
#include "common/io/mapped_file.h"
#include "nlohmann/json.hpp"

namespace icae {

absl::Status SafetensorsWriter::Add(const std::string& name, DType dtype,
                                    const std::vector<int64_t>& shape, absl::string_view bytes) {
  if (name.empty() || name == "__metadata__") {
    return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", name, "'"));
  }
  for (const Entry& e : entries_) {
    if (e.name == name) return absl::InvalidArgumentError(absl::StrCat("duplicate tensor '", name, "'"));
  }
  std::optional<int64_t> numel = CheckedNumel(shape.data(), shape.size(), ItemSize(dtype));
  if (!numel) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': bad shape"));
  const uint64_t expected = static_cast<uint64_t>(*numel) * ItemSize(dtype);
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", bytes.size(),
                                                   " bytes given, shape needs ", expected));
  }
  Entry entry{name, dtype, shape, data_.size(), data_.size() + bytes.size()};
  data_.append(bytes.data(), bytes.size());
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

std::string SafetensorsWriter::Serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", std::string(SafetensorsName(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {e.begin, e.end}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + text.size() + data_.size());
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += text;
  out += data_;
  return out;
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path) const {
  return WriteStringToFile(path, Serialize());
}

}  // namespace icae
