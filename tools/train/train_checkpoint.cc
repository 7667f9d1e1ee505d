#include "tools/train/train_checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/io/checkpoint.h"
#include "common/io/mapped_file.h"
#include "common/io/safetensors_writer.h"
#include "common/model/tensor_io.h"
#include "common/model/torch_status.h"

namespace icae::train {
namespace {

absl::Status MakeDirs(const std::string& path) {
  std::string partial;
  for (absl::string_view piece : absl::StrSplit(path, '/')) {
    partial += std::string(piece) + "/";
    if (piece.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(absl::StrCat("cannot create directory ", partial));
    }
  }
  return absl::OkStatus();
}

void RemoveTree(const std::string& path) {
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") std::remove(JoinPath(path, name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(path.c_str());
}

}  // namespace

absl::Status SaveTrainCheckpoint(const std::string& dir, const TrainCheckpoint& c) {
  RETURN_IF_ERROR(MakeDirs(dir));
  const std::string name = absl::StrFormat("step-%07d", c.step);
  const std::string target = JoinPath(dir, name);
  const std::string tmp = target + ".partial";
  RemoveTree(tmp);
  RETURN_IF_ERROR(MakeDirs(tmp));
  RETURN_IF_ERROR(CatchTorch("saving the checkpoint", [&]() -> absl::Status {
    SafetensorsWriter writer;
    for (size_t i = 0; i < c.params.size(); ++i) {
      RETURN_IF_ERROR(AddTensor(writer, absl::StrCat("param.", i), c.params[i].detach()));
    }
    for (size_t i = 0; i < c.moments.size(); ++i) {
      RETURN_IF_ERROR(AddTensor(writer, absl::StrCat("moment.", i), c.moments[i]));
    }
    return writer.WriteFile(JoinPath(tmp, "tensors.safetensors"));
  }));
  nlohmann::json state = {{"step", c.step},
                          {"recipe", c.recipe},
                          {"num_params", c.params.size()},
                          {"num_moments", c.moments.size()},
                          {"data", c.data_state},
                          {"tokens_seen", c.tokens_seen}};
  RETURN_IF_ERROR(WriteStringToFile(JoinPath(tmp, "state.json"), state.dump(1)));
  RemoveTree(target);
  if (std::rename(tmp.c_str(), target.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", target));
  }
  // LATEST moves only now; then the older checkpoints go.
  RETURN_IF_ERROR(WriteStringToFile(JoinPath(dir, "LATEST"), name + "\n"));
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> old;
    while (dirent* e = ::readdir(d)) {
      const std::string entry = e->d_name;
      if (absl::StartsWith(entry, "step-") && entry != name) old.push_back(entry);
    }
    ::closedir(d);
    for (const std::string& entry : old) RemoveTree(JoinPath(dir, entry));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<TrainCheckpoint>> LoadTrainCheckpoint(const std::string& dir) {
  const std::string latest_path = JoinPath(dir, "LATEST");
  if (!FileExists(latest_path)) return std::optional<TrainCheckpoint>();
  ASSIGN_OR_RETURN(std::string latest, ReadFileToString(latest_path));
  const std::string path = JoinPath(dir, std::string(absl::StripAsciiWhitespace(latest)));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(JoinPath(path, "state.json")));
  nlohmann::json state = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto damaged = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, " is damaged: ", why));
  };
  if (state.is_discarded() || !state.is_object()) return damaged("state.json is not JSON");
  for (const char* key : {"step", "recipe", "num_params", "num_moments", "data"}) {
    if (!state.contains(key)) return damaged(absl::StrCat("state.json has no \"", key, "\""));
  }
  TrainCheckpoint c;
  c.step = state["step"].get<int64_t>();
  c.recipe = state["recipe"].get<std::string>();
  c.data_state = state["data"];
  c.tokens_seen = state.value("tokens_seen", 0.0);
  ASSIGN_OR_RETURN(Checkpoint tensors, Checkpoint::OpenFile(JoinPath(path, "tensors.safetensors")));
  const int64_t num_params = state["num_params"].get<int64_t>();
  const int64_t num_moments = state["num_moments"].get<int64_t>();
  for (int64_t i = 0; i < num_params; ++i) {
    ASSIGN_OR_RETURN(at::Tensor t, LoadTensor(tensors, absl::StrCat("param.", i), at::kFloat));
    c.params.push_back(t.clone());
  }
  for (int64_t i = 0; i < num_moments; ++i) {
    ASSIGN_OR_RETURN(at::Tensor t, LoadTensor(tensors, absl::StrCat("moment.", i), at::kFloat));
    c.moments.push_back(t.clone());
  }
  return std::optional<TrainCheckpoint>(std::move(c));
}

}  // namespace icae::train
