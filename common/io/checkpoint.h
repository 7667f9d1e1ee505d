// A set of named tensors spread over one or more safetensors files: a single model.safetensors,
// a sharded checkpoint (model.safetensors.index.json + shards) or one adapter file.
// Immutable and thread-safe after Open.
#ifndef ICAE_COMMON_IO_CHECKPOINT_H_
#define ICAE_COMMON_IO_CHECKPOINT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/io/safetensors.h"

namespace icae {

class Checkpoint {
 public:
  struct Entry {
    std::shared_ptr<const SafetensorsFile> file;  // Keeps the mapping alive for views.
    const TensorInfo* info;
  };

  // A model directory: model.safetensors.index.json when present, else model.safetensors.
  static absl::StatusOr<Checkpoint> OpenDirectory(const std::string& dir);
  // One file.
  static absl::StatusOr<Checkpoint> OpenFile(const std::string& path);
  // A sharded checkpoint from its index file ({"weight_map": {tensor: shard file}}). Every shard
  // must exist, hold every tensor the map assigns to it, and no tensor may be in two shards.
  static absl::StatusOr<Checkpoint> OpenIndex(const std::string& index_path);

  const Entry* Find(absl::string_view name) const;
  std::vector<std::string> Names() const;
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }
  // Where the tensors came from (directory or file), for messages.
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, Entry, std::less<>> entries_;
};

bool FileExists(const std::string& path);
std::string JoinPath(absl::string_view dir, absl::string_view name);

}  // namespace icae

#endif  // ICAE_COMMON_IO_CHECKPOINT_H_
