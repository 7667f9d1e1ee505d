#include "common/model/fingerprint.h"

#include <algorithm>

#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"

namespace icae {

absl::StatusOr<std::string> BaseModelFingerprint(const std::string& model_dir) {
  ASSIGN_OR_RETURN(std::string config, ReadFileToString(JoinPath(model_dir, "config.json")));
  ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::OpenDirectory(model_dir));
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& file : checkpoint.files()) {
    const std::string& path = file->path();
    headers.emplace_back(path.substr(path.find_last_of('/') + 1), std::string(file->header()));
  }
  std::sort(headers.begin(), headers.end());
  Sha256 hasher;
  hasher.UpdateField("icae-base-model-v1");
  hasher.UpdateField(config);
  for (const auto& [name, header] : headers) {
    hasher.UpdateField(name);
    hasher.UpdateField(header);
  }
  return hasher.HexDigest();
}

std::string EncoderId(const std::string& base_fingerprint, const std::string& adapter_fingerprint) {
  Sha256 hasher;
  hasher.UpdateField("icae-encoder-id-v1");
  hasher.UpdateField(base_fingerprint);
  hasher.UpdateField(adapter_fingerprint);
  return hasher.HexDigest();
}

}  // namespace icae
