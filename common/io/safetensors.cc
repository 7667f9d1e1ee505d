#include "common/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace icae {
namespace {

using nlohmann::json;

absl::Status Bad(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status BadTensor(absl::string_view path, absl::string_view tensor, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", tensor, "': ", what));
}

// nlohmann::json keeps the last of duplicate keys silently; the parser callback sees every key.
absl::StatusOr<json> ParseHeaderJson(absl::string_view path, absl::string_view text) {
  std::string duplicate;
  std::vector<std::set<std::string>> keys_by_depth;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      if (static_cast<int>(keys_by_depth.size()) <= depth) keys_by_depth.resize(depth + 1);
      keys_by_depth[depth].clear();
    } else if (event == json::parse_event_t::key && depth >= 1) {
      auto& keys = keys_by_depth[depth - 1];
      if (!keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json header = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Bad(path, "header is not valid JSON");
  if (!duplicate.empty()) return Bad(path, absl::StrCat("duplicate name '", duplicate, "' in header"));
  if (!header.is_object()) return Bad(path, "header is not a JSON object");
  return header;
}

absl::StatusOr<TensorInfo> ParseEntry(absl::string_view path, const std::string& name,
                                      const json& entry, uint64_t data_size) {
  if (!entry.is_object()) return BadTensor(path, name, "entry is not an object");
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return BadTensor(path, name, "missing or non-string \"dtype\"");
  }
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return BadTensor(path, name, "missing or non-array \"shape\"");
  }
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return BadTensor(path, name, "\"data_offsets\" must be [begin, end]");
  }
  TensorInfo info;
  info.name = name;
  const std::string dtype_name = dtype_it->get<std::string>();
  std::optional<DType> dtype = DTypeFromSafetensorsName(dtype_name);
  if (!dtype) {
    return BadTensor(path, name,
                     absl::StrCat("unsupported dtype '", dtype_name, "' (F32, F16, BF16, I32, I64)"));
  }
  info.dtype = *dtype;
  for (const json& dim : *shape_it) {
    if (!dim.is_number_integer()) return BadTensor(path, name, "shape holds a non-integer");
    if (dim.is_number_unsigned() && dim.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return BadTensor(path, name, "dimension too large");
    }
    const int64_t value = dim.get<int64_t>();
    if (value < 0) return BadTensor(path, name, absl::StrCat("negative dimension ", value));
    info.shape.push_back(value);
  }
  std::optional<int64_t> numel =
      CheckedNumel(info.shape.data(), info.shape.size(), ItemSize(info.dtype));
  if (!numel) return BadTensor(path, name, "element count overflows");
  info.numel = *numel;
  for (const json& offset : *offsets_it) {
    if (!offset.is_number_unsigned()) {
      return BadTensor(path, name, "data_offsets must be non-negative integers");
    }
  }
  info.begin = (*offsets_it)[0].get<uint64_t>();
  info.end = (*offsets_it)[1].get<uint64_t>();
  if (info.end < info.begin) {
    return BadTensor(path, name,
                     absl::StrCat("misordered data_offsets [", info.begin, ", ", info.end, "]"));
  }
  if (info.end > data_size) {
    return BadTensor(path, name,
                     absl::StrCat("data_offsets [", info.begin, ", ", info.end,
                                  "] outside the data area of ", data_size, " bytes"));
  }
  const uint64_t expected = static_cast<uint64_t>(info.numel) * ItemSize(info.dtype);
  if (info.end - info.begin != expected) {
    return BadTensor(path, name,
                     absl::StrCat("shape [", absl::StrJoin(info.shape, ","), "] of ", dtype_name,
                                  " needs ", expected, " bytes but data_offsets hold ",
                                  info.end - info.begin));
  }
  return info;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> mapping, MappedFile::Open(path));
  return Parse(std::move(mapping), std::string(), path);
}

absl::StatusOr<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::FromBytes(
    std::string bytes, std::string name) {
  return Parse(nullptr, std::move(bytes), std::move(name));
}

absl::StatusOr<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::Parse(
    std::shared_ptr<const MappedFile> mapping, std::string owned, std::string path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = std::move(path);
  file->owned_ = std::move(owned);
  file->mapping_ = std::move(mapping);
  const uint8_t* bytes = file->mapping_
                             ? file->mapping_->data()
                             : reinterpret_cast<const uint8_t*>(file->owned_.data());
  const uint64_t size = file->mapping_ ? file->mapping_->size() : file->owned_.size();
  const std::string& p = file->path_;

  if (size < 8) {
    return Bad(p, absl::StrCat("truncated: ", size, " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Bad(p, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                               kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_len > size - 8) {
    return Bad(p, absl::StrCat("header length ", header_len, " runs past the end of the file (",
                               size, " bytes)"));
  }
  file->header_.assign(reinterpret_cast<const char*>(bytes + 8), header_len);
  file->data_area_ = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  ASSIGN_OR_RETURN(json header, ParseHeaderJson(p, file->header_));
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Bad(p, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return Bad(p, absl::StrCat("__metadata__ value of '", m.key(), "' is not a string"));
        }
        file->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(p, it.key(), *it, data_size));
    file->tensors_.push_back(std::move(info));
  }
  std::sort(file->tensors_.begin(), file->tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  for (size_t i = 1; i < file->tensors_.size(); ++i) {
    const TensorInfo& prev = file->tensors_[i - 1];
    const TensorInfo& cur = file->tensors_[i];
    if (cur.begin < prev.end) {
      return BadTensor(p, cur.name,
                       absl::StrCat("data_offsets [", cur.begin, ", ", cur.end,
                                    "] overlap tensor '", prev.name, "' [", prev.begin, ", ",
                                    prev.end, "]"));
    }
  }
  for (size_t i = 0; i < file->tensors_.size(); ++i) {
    file->index_.emplace(file->tensors_[i].name, i);
  }
  return std::shared_ptr<const SafetensorsFile>(std::move(file));
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Bytes(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(data_area_ + info.begin, info.end - info.begin);
}

}  // namespace icae
