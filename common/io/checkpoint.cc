#include "common/io/checkpoint.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/io/mapped_file.h"
#include "nlohmann/json.hpp"

namespace icae {

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::StatusOr<Checkpoint> Checkpoint::OpenDirectory(const std::string& dir) {
  const std::string index = JoinPath(dir, "model.safetensors.index.json");
  if (FileExists(index)) return OpenIndex(index);
  const std::string single = JoinPath(dir, "model.safetensors");
  if (FileExists(single)) {
    ASSIGN_OR_RETURN(Checkpoint checkpoint, OpenFile(single));
    checkpoint.source_ = dir;
    return checkpoint;
  }
  return absl::NotFoundError(
      absl::StrCat(dir, ": neither model.safetensors nor model.safetensors.index.json found"));
}

absl::StatusOr<Checkpoint> Checkpoint::OpenFile(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  Checkpoint checkpoint;
  checkpoint.source_ = path;
  for (const TensorInfo& info : file->tensors()) {
    checkpoint.entries_.emplace(info.name, Entry{file, &info});
  }
  checkpoint.files_.push_back(std::move(file));
  return checkpoint;
}

absl::StatusOr<Checkpoint> Checkpoint::OpenIndex(const std::string& index_path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  nlohmann::json index = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a JSON object"));
  }
  auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object() || map_it->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": missing or empty \"weight_map\""));
  }
  const std::string dir = index_path.substr(0, index_path.find_last_of('/') + 1);
  Checkpoint checkpoint;
  checkpoint.source_ = index_path;
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
  for (auto it = map_it->begin(); it != map_it->end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry '", it.key(), "' is not a file name"));
    }
    const std::string shard = it->get<std::string>();
    // Shards live next to the index: no directories, so no path traversal.
    if (shard.empty() || shard == "." || shard == ".." || absl::StrContains(shard, "/")) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": shard '", shard,
                                                     "' of tensor '", it.key(),
                                                     "' must be a plain file name"));
    }
    if (!shards.count(shard)) {
      ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir + shard));
      shards[shard] = file;
      checkpoint.files_.push_back(std::move(file));
    }
    const std::shared_ptr<const SafetensorsFile>& file = shards[shard];
    const TensorInfo* info = file->Find(it.key());
    if (info == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": tensor '", it.key(), "' is not in its shard ", shard));
    }
    checkpoint.entries_.emplace(it.key(), Entry{file, info});
  }
  // A tensor stored in a shard but mapped elsewhere (or twice) is an inconsistent checkpoint.
  for (const auto& file : checkpoint.files_) {
    for (const TensorInfo& info : file->tensors()) {
      const Entry* entry = checkpoint.Find(info.name);
      if (entry == nullptr || entry->file != file) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor '", info.name, "' in ",
                                                       file->path(),
                                                       " is not mapped to that shard"));
      }
    }
  }
  return checkpoint;
}

const Checkpoint::Entry* Checkpoint::Find(absl::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names;
}

}  // namespace icae
