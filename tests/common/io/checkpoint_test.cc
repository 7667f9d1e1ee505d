// Checkpoint: single files and sharded checkpoints (model.safetensors.index.json + shards) built
// from the golden tiny-llama model in a scratch directory.
#include "common/io/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/io/mapped_file.h"
#include "common/io/safetensors_writer.h"
#include "nlohmann/json.hpp"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::ScratchDir;
using ::icae::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kShard1[] = "model-00001-of-00002.safetensors";
constexpr char kShard2[] = "model-00002-of-00002.safetensors";

std::string GoldenModel() { return std::string(ICAE_TESTDATA) + "/tiny-llama/model.safetensors"; }

std::string AsString(absl::Span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

class ShardedCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto golden = SafetensorsFile::Open(GoldenModel());
    ASSERT_OK(golden);
    golden_ = *golden;
    // Layers 0 and the embeddings go to shard 1, everything else to shard 2.
    for (const TensorInfo& info : golden_->tensors()) {
      const bool first = info.name.find("layers.0.") != std::string::npos ||
                         info.name == "model.embed_tokens.weight";
      shard_of_[info.name] = first ? kShard1 : kShard2;
    }
  }

  // Writes the shards named by `shard_of` (tensor -> file) and an index mapping `weight_map`.
  void Write(const std::map<std::string, std::string>& shard_of, const nlohmann::json& weight_map) {
    std::map<std::string, SafetensorsWriter> writers;
    for (const TensorInfo& info : golden_->tensors()) {
      auto it = shard_of.find(info.name);
      if (it == shard_of.end()) continue;
      writers[it->second].SetMetadata("format", "pt");
      ASSERT_OK(writers[it->second].Add(info.name, info.dtype, info.shape,
                                        AsString(golden_->Bytes(info))));
    }
    for (const auto& [file, writer] : writers) ASSERT_OK(writer.WriteFile(dir_.Join(file)));
    nlohmann::json index = {{"metadata", {{"total_size", 543000}}}, {"weight_map", weight_map}};
    ASSERT_OK(WriteStringToFile(dir_.Join("model.safetensors.index.json"), index.dump(2)));
  }
  void Write() { Write(shard_of_, nlohmann::json(shard_of_)); }

  std::string IndexPath() const { return dir_.Join("model.safetensors.index.json"); }

  ScratchDir dir_;
  std::shared_ptr<const SafetensorsFile> golden_;
  std::map<std::string, std::string> shard_of_;
};

TEST_F(ShardedCheckpointTest, FindsEveryTensorWithIdenticalBytes) {
  Write();
  auto checkpoint = Checkpoint::OpenDirectory(dir_.path());
  ASSERT_OK(checkpoint);
  EXPECT_EQ(checkpoint->files().size(), 2u);
  EXPECT_EQ(checkpoint->source(), IndexPath());
  EXPECT_EQ(checkpoint->Names().size(), golden_->tensors().size());
  for (const TensorInfo& info : golden_->tensors()) {
    const Checkpoint::Entry* entry = checkpoint->Find(info.name);
    ASSERT_NE(entry, nullptr) << info.name;
    EXPECT_EQ(entry->info->name, info.name);
    EXPECT_EQ(entry->info->dtype, info.dtype);
    EXPECT_EQ(entry->info->shape, info.shape);
    EXPECT_EQ(entry->file->path(), dir_.Join(shard_of_[info.name]));
    EXPECT_TRUE(AsString(entry->file->Bytes(*entry->info)) == AsString(golden_->Bytes(info)))
        << info.name;
  }
  EXPECT_EQ(checkpoint->Find("model.layers.9.mlp.up_proj.weight"), nullptr);
  // OpenIndex directly gives the same, and a moved Checkpoint keeps valid entries.
  auto direct = Checkpoint::OpenIndex(IndexPath());
  ASSERT_OK(direct);
  Checkpoint moved = std::move(*direct);
  const Checkpoint::Entry* norm = moved.Find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->file->Bytes(*norm->info).size(), 64u * 4u);
}

TEST_F(ShardedCheckpointTest, MissingShard) {
  shard_of_["model.norm.weight"] = "model-00003-of-00003.safetensors";
  nlohmann::json weight_map(shard_of_);
  shard_of_.erase("model.norm.weight");
  Write(shard_of_, weight_map);
  EXPECT_THAT(Checkpoint::OpenDirectory(dir_.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("model-00003-of-00003.safetensors")));
}

TEST_F(ShardedCheckpointTest, TensorNotInItsShard) {
  // The map names a tensor that no shard holds.
  nlohmann::json weight_map(shard_of_);
  weight_map["model.layers.7.mlp.up_proj.weight"] = kShard2;
  Write(shard_of_, weight_map);
  EXPECT_THAT(Checkpoint::OpenDirectory(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(IndexPath()),
                             HasSubstr("tensor 'model.layers.7.mlp.up_proj.weight' is not in its "
                                       "shard model-00002-of-00002.safetensors"))));
}

TEST_F(ShardedCheckpointTest, TensorMappedToTheWrongShard) {
  // Stored in shard 1, mapped to shard 2.
  nlohmann::json weight_map(shard_of_);
  weight_map["model.embed_tokens.weight"] = kShard2;
  Write(shard_of_, weight_map);
  EXPECT_THAT(Checkpoint::OpenDirectory(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'model.embed_tokens.weight' is not in its shard "
                                 "model-00002-of-00002.safetensors")));
}

TEST_F(ShardedCheckpointTest, TensorStoredButUnmappedOrInTwoShards) {
  // Stored in shard 1 but absent from the map.
  nlohmann::json weight_map(shard_of_);
  weight_map.erase("model.layers.0.mlp.up_proj.weight");
  Write(shard_of_, weight_map);
  EXPECT_THAT(Checkpoint::OpenDirectory(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tensor 'model.layers.0.mlp.up_proj.weight' in "),
                             HasSubstr(kShard1), HasSubstr("is not mapped to that shard"))));

  // Stored in both shards (a third file holds a copy of a shard-2 tensor).
  ScratchDir other;
  SafetensorsWriter copy;
  const TensorInfo* norm = golden_->Find("model.norm.weight");
  ASSERT_OK(copy.Add(norm->name, norm->dtype, norm->shape, AsString(golden_->Bytes(*norm))));
  const TensorInfo* embed = golden_->Find("model.embed_tokens.weight");
  ASSERT_OK(copy.Add(embed->name, embed->dtype, embed->shape, AsString(golden_->Bytes(*embed))));
  ASSERT_OK(copy.WriteFile(dir_.Join("extra.safetensors")));
  weight_map = nlohmann::json(shard_of_);
  weight_map["model.embed_tokens.weight"] = "extra.safetensors";
  ASSERT_OK(WriteStringToFile(IndexPath(), nlohmann::json({{"weight_map", weight_map}}).dump()));
  EXPECT_THAT(
      Checkpoint::OpenIndex(IndexPath()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not mapped to that shard")));
}

TEST_F(ShardedCheckpointTest, ShardNamesMustBePlainFileNames) {
  Write();
  // A real safetensors file outside the checkpoint directory must not be reachable.
  ScratchDir outside;
  ASSERT_OK(WriteStringToFile(outside.Join("evil.safetensors"), *ReadFileToString(GoldenModel())));
  const std::string relative =
      "../" + outside.path().substr(outside.path().rfind('/') + 1) + "/evil.safetensors";
  for (const std::string& shard :
       {relative, outside.Join("evil.safetensors"), std::string(".."), std::string("."),
        std::string(""), std::string("sub/") + kShard1}) {
    nlohmann::json weight_map(shard_of_);
    weight_map["model.norm.weight"] = shard;
    ASSERT_OK(WriteStringToFile(IndexPath(), nlohmann::json({{"weight_map", weight_map}}).dump()));
    EXPECT_THAT(
        Checkpoint::OpenDirectory(dir_.path()),
        StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("tensor 'model.norm.weight'"),
                                                           HasSubstr("must be a plain file name"))))
        << shard;
  }
}

TEST_F(ShardedCheckpointTest, MalformedIndex) {
  Write();
  const auto expect_invalid = [&](const std::string& text, const std::string& what) {
    ASSERT_OK(WriteStringToFile(IndexPath(), text));
    EXPECT_THAT(Checkpoint::OpenDirectory(dir_.path()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(IndexPath()), HasSubstr(what))))
        << text;
  };
  expect_invalid("{", "not a JSON object");
  expect_invalid("[]", "not a JSON object");
  expect_invalid("{}", "missing or empty \"weight_map\"");
  expect_invalid("{\"weight_map\": {}}", "missing or empty \"weight_map\"");
  expect_invalid("{\"weight_map\": [1]}", "missing or empty \"weight_map\"");
  expect_invalid("{\"weight_map\": {\"model.norm.weight\": 3}}",
                 "weight_map entry 'model.norm.weight' is not a file name");
}

TEST(CheckpointTest, SingleFileDirectoryAndFile) {
  const std::string dir = std::string(ICAE_TESTDATA) + "/tiny-llama";
  auto checkpoint = Checkpoint::OpenDirectory(dir);
  ASSERT_OK(checkpoint);
  EXPECT_EQ(checkpoint->source(), dir);
  EXPECT_EQ(checkpoint->files().size(), 1u);
  EXPECT_EQ(checkpoint->Names().size(), 21u);
  ASSERT_NE(checkpoint->Find("lm_head.weight"), nullptr);
  EXPECT_EQ(checkpoint->Find("lm_head.weight")->info->shape, (std::vector<int64_t>{384, 64}));

  auto adapter =
      Checkpoint::OpenFile(std::string(ICAE_TESTDATA) + "/tiny-icae/adapter.safetensors");
  ASSERT_OK(adapter);
  const Checkpoint::Entry* memory = adapter->Find("memory_token_embed.weight");
  ASSERT_NE(memory, nullptr);
  EXPECT_EQ(memory->info->shape, (std::vector<int64_t>{7, 64}));
}

TEST(CheckpointTest, EmptyDirectoryIsNotFound) {
  ScratchDir dir;
  EXPECT_THAT(Checkpoint::OpenDirectory(dir.path()),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(dir.path()), HasSubstr("model.safetensors"))));
  // A broken single file reports its own path.
  ASSERT_OK(WriteStringToFile(dir.Join("model.safetensors"), "garbage!garbage!"));
  EXPECT_THAT(
      Checkpoint::OpenDirectory(dir.path()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(dir.Join("model.safetensors"))));
}

TEST(CheckpointTest, JoinPath) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_TRUE(FileExists(GoldenModel()));
  EXPECT_FALSE(FileExists(std::string(ICAE_TESTDATA)));  // A directory is not a file.
  EXPECT_FALSE(FileExists(std::string(ICAE_TESTDATA) + "/nope"));
}

}  // namespace
}  // namespace icae
