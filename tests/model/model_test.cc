// Model behaviour beyond the fixtures: batching, caching, tied embeddings, shards, windows.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/io/mapped_file.h"
#include "common/io/safetensors_writer.h"
#include "common/model/compressor.h"
#include "common/model/ops.h"
#include "common/model/tensor_io.h"
#include "common/model/transformer.h"
#include "nlohmann/json.hpp"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using testing::CopyDir;
using testing::Expected;
using testing::MaxAbsDiff;
using testing::ScratchDir;
using testing::TestData;
using testing::ToIds;
using testing::WriteWindowedMistral;

at::Tensor FullLogits(const Transformer& model, const at::Tensor& ids) {
  c10::InferenceMode guard;
  at::Tensor positions = at::arange(ids.size(-1), at::kLong).unsqueeze(0);
  return model.Logits(model.Forward(model.Embed(ids.view({1, -1})), positions))[0];
}

// Prefill the first `prefill` ids, then decode the rest one at a time; logits of every position.
at::Tensor CachedLogits(const Transformer& model, const at::Tensor& ids, int64_t prefill) {
  c10::InferenceMode guard;
  KVCache cache = model.NewCache(4);  // Small on purpose: growth must preserve the cache.
  at::Tensor flat = ids.view({-1});
  std::vector<at::Tensor> rows;
  rows.push_back(model.Logits(model.Prefill(model.Embed(flat.narrow(0, 0, prefill)), cache)));
  for (int64_t t = prefill; t < flat.size(0); ++t) {
    KVCache* caches[] = {&cache};
    rows.push_back(model.Logits(model.DecodeStep(model.Embed(flat.narrow(0, t, 1)), caches)));
  }
  return at::cat(rows, 0);
}

TEST(TransformerTest, KvCachedDecodingEqualsFullRecompute) {
  for (const char* fixture : {"tiny-llama", "tiny-mistral"}) {
    auto model = Transformer::Load(TestData(fixture), Runtime{});
    ASSERT_OK(model);
    at::Tensor ids = Expected(fixture, "input_ids");
    at::Tensor full = FullLogits(**model, ids);
    for (int64_t prefill : {1, 5, 23}) {
      EXPECT_LT(MaxAbsDiff(CachedLogits(**model, ids, prefill), full), 1e-4)
          << fixture << " prefill " << prefill;
    }
  }
}

// Chunked prefill (the decoder's scheduler): prefilling a context in pieces, each continuing from
// the cache's length, gives the logits of one prefill.
TEST(TransformerTest, ChunkedPrefillEqualsOnePrefill) {
  for (const char* fixture : {"tiny-llama", "tiny-mistral"}) {
    auto model = Transformer::Load(TestData(fixture), Runtime{});
    ASSERT_OK(model);
    c10::InferenceMode guard;
    at::Tensor ids = Expected(fixture, "input_ids").view({-1});
    const int64_t n = ids.size(0);
    KVCache whole_cache = (*model)->NewCache(n);
    at::Tensor whole = (*model)->Logits((*model)->Prefill((*model)->Embed(ids), whole_cache));
    for (int64_t chunk : {int64_t{1}, int64_t{3}, int64_t{7}, n - 1}) {
      KVCache cache = (*model)->NewCache(4);  // grows across chunks
      std::vector<at::Tensor> rows;
      for (int64_t start = 0; start < n; start += chunk) {
        const int64_t len = std::min(chunk, n - start);
        rows.push_back((*model)->Logits(
            (*model)->Prefill((*model)->Embed(ids.narrow(0, start, len)), cache)));
      }
      EXPECT_EQ(cache.length(), n);
      EXPECT_LT(MaxAbsDiff(at::cat(rows, 0), whole), 1e-5) << fixture << " chunk " << chunk;
    }
  }
}

// Slot-prefix reuse: sequences continuing a shared, frozen prefix cache get the logits of one
// cache holding everything (prefill and decode, with the kernels and on the ATen path, with and
// without a sliding window that starts inside the prefix), and never write into the prefix.
TEST(TransformerTest, SharedPrefixEqualsOneCache) {
  testing::ForEachDecodeModel([](const Transformer& m, bool) {
    const int64_t vocab = m.config().vocab_size;
    at::Tensor ids = Expected("tiny-llama", "input_ids").view({-1}) % vocab;
    const int64_t n = ids.size(0), p = 9;
    auto decode = [&](std::vector<KVCache*> caches) {
      std::vector<at::Tensor> logits;
      for (int64_t step = 0; step < 5; ++step) {
        at::Tensor tokens = at::tensor({11 + step, 40 + 3 * step}, at::kLong) % vocab;
        logits.push_back(m.Logits(m.DecodeStep(m.Embed(tokens), caches)));
      }
      return logits;
    };
    // One cache per sequence: both read ids, the second a different tail after the prefix.
    at::Tensor other = ids.clone();
    other.narrow(0, p, n - p).add_(17).remainder_(vocab);
    KVCache a = m.NewCache(n), b = m.NewCache(n);
    at::Tensor whole_a = m.Logits(m.Prefill(m.Embed(ids), a));
    at::Tensor whole_b = m.Logits(m.Prefill(m.Embed(other), b));
    const std::vector<at::Tensor> whole_steps = decode({&a, &b});
    // The prefix once, then each tail on top of it.
    KVCache prefix_cache = m.NewCache(p);
    at::Tensor head = m.Logits(m.Prefill(m.Embed(ids.narrow(0, 0, p)), prefix_cache));
    auto prefix = std::make_shared<const KVCache>(std::move(prefix_cache));
    const at::Tensor keys_before = prefix->KeyStorage(0).clone();
    KVCache sa = m.NewCache(2, prefix), sb = m.NewCache(2, prefix);  // Grow past 2.
    EXPECT_EQ(sa.length(), p);
    at::Tensor tail_a = m.Logits(m.Prefill(m.Embed(ids.narrow(0, p, n - p)), sa));
    at::Tensor tail_b = m.Logits(m.Prefill(m.Embed(other.narrow(0, p, n - p)), sb));
    EXPECT_LT(MaxAbsDiff(at::cat({head, tail_a}), whole_a), 1e-5);
    EXPECT_LT(MaxAbsDiff(tail_b, whole_b.narrow(0, p, n - p)), 1e-5);
    const std::vector<at::Tensor> shared_steps = decode({&sa, &sb});
    for (size_t s = 0; s < whole_steps.size(); ++s) {
      EXPECT_LT(MaxAbsDiff(shared_steps[s], whole_steps[s]), 1e-5) << "step " << s;
    }
    EXPECT_EQ(sa.length(), n + 5);
    EXPECT_EQ(sa.prefix_length(), p);
    EXPECT_EQ(sa.bytes(), KVCache::BytesPerPosition(m.config(), m.dtype()) * sa.capacity());
    EXPECT_TRUE(at::equal(prefix->KeyStorage(0), keys_before));
    EXPECT_EQ(prefix->length(), p);
  });
}

// A decode step of two sequences carrying `chunk` positions of a third (which continues a shared
// prefix) against the step and a Prefill apart, then one more decode step of all three.
void CheckChunkRidesAlong(const Transformer& m, bool kernels_on, int64_t chunk) {
  c10::InferenceMode guard;
  const bool fp32 = m.dtype() == at::kFloat;
  const int64_t vocab = m.config().vocab_size;
  at::Tensor once = Expected("tiny-llama", "input_ids").view({-1}) % vocab;
  at::Tensor ids = at::cat({once, (once + 7) % vocab});
  const int64_t p = 5;
  KVCache prefix_cache = m.NewCache(p);
  m.Prefill(m.Embed(ids.narrow(0, 0, p)), prefix_cache);
  auto prefix = std::make_shared<const KVCache>(std::move(prefix_cache));
  struct State {
    KVCache a, b, c;
  };
  auto start = [&]() {
    State s{m.NewCache(2), m.NewCache(2), m.NewCache(2, prefix)};
    m.Prefill(m.Embed(ids.narrow(0, 0, 6)), s.a);
    m.Prefill(m.Embed((ids.narrow(0, 3, 9) + 5) % vocab), s.b);
    m.Prefill(m.Embed(ids.narrow(0, p, 2)), s.c);
    return s;
  };
  at::Tensor tokens = at::tensor({11, 40}, at::kLong) % vocab;
  at::Tensor chunk_embeds = m.Embed(ids.narrow(0, p + 2, chunk));
  State alone = start(), mixed = start();
  KVCache* alone_caches[] = {&alone.a, &alone.b};
  at::Tensor step = m.DecodeStep(m.Embed(tokens), alone_caches);
  at::Tensor prefill = m.Prefill(chunk_embeds, alone.c);
  KVCache* mixed_caches[] = {&mixed.a, &mixed.b};
  at::Tensor chunk_hidden;
  at::Tensor mixed_step = m.DecodeStep(
      m.Embed(tokens), mixed_caches, Transformer::StepChunk{chunk_embeds, &mixed.c}, &chunk_hidden);
  if (kernels_on) {
    EXPECT_TRUE(at::equal(mixed_step, step)) << MaxAbsDiff(mixed_step, step);
  } else {
    EXPECT_LT(MaxAbsDiff(mixed_step, step), fp32 ? 1e-5 : 2e-2);
  }
  ASSERT_EQ(chunk_hidden.sizes(), prefill.sizes());
  EXPECT_LT(MaxAbsDiff(chunk_hidden, prefill), fp32 ? 1e-5 : 5e-2);
  EXPECT_EQ(mixed.c.length(), alone.c.length());
  EXPECT_EQ(mixed.a.length(), alone.a.length());
  // The caches go on alike.
  KVCache* after_alone[] = {&alone.a, &alone.b, &alone.c};
  KVCache* after_mixed[] = {&mixed.a, &mixed.b, &mixed.c};
  at::Tensor next = at::tensor({3, 9, 27}, at::kLong) % vocab;
  EXPECT_LT(MaxAbsDiff(m.Logits(m.DecodeStep(m.Embed(next), after_mixed)),
                       m.Logits(m.DecodeStep(m.Embed(next), after_alone))),
            fp32 ? 1e-4 : 0.5);
  // A chunk's cache may not be in the decode batch.
  KVCache* clash[] = {&mixed.a, &mixed.c};
  EXPECT_THROW(m.DecodeStep(m.Embed(tokens), clash, Transformer::StepChunk{chunk_embeds, &mixed.c},
                            &chunk_hidden),
               c10::Error);
}

// Chunked prefill riding along a decode step (the decoder's mixed steps): the decode rows are
// those of the step alone (bit for bit with the CPU kernels), the chunk's hidden states and cache
// those of a separate Prefill; float32 and bfloat16, kernels and ATen, a sliding window, a chunk
// within the small-batch kernel's 16 rows and one past it.
TEST(TransformerTest, ChunkRidingADecodeStepEqualsSeparateSteps) {
  testing::ScratchDir windowed;
  WriteWindowedMistral(windowed.path(), 6);
  for (const std::string& dir : {TestData("tiny-llama"), windowed.path()}) {
    for (bool kernels_on : {true, false}) {
      SetCpuKernelsEnabled(kernels_on);
      for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        auto model = Transformer::Load(dir, Runtime{at::kCPU, dtype});
        ASSERT_OK(model);
        for (int64_t chunk : {7, 20}) {
          SCOPED_TRACE(absl::StrCat(dir, kernels_on ? " kernels " : " aten ", c10::toString(dtype),
                                    " chunk ", chunk));
          CheckChunkRidesAlong(**model, kernels_on, chunk);
        }
      }
    }
  }
  SetCpuKernelsEnabled(true);
}

TEST(TransformerTest, PaddedBatchEqualsOneAtATime) {
  auto model = Transformer::Load(TestData("tiny-mistral"), Runtime{});
  ASSERT_OK(model);
  c10::InferenceMode guard;
  at::Tensor ids = Expected("tiny-mistral", "input_ids")[0];
  // Row 0: 24 tokens; row 1: the first 10 left-padded to 24 with a key mask.
  at::Tensor batch_ids =
      at::stack({ids, at::cat({at::zeros({14}, at::kLong), ids.narrow(0, 0, 10)})});
  at::Tensor valid = at::ones({2, 24}, at::kBool);
  valid[1].narrow(0, 0, 14).fill_(false);
  at::Tensor positions =
      at::stack({at::arange(24, at::kLong),
                 at::cat({at::zeros({14}, at::kLong), at::arange(10, at::kLong)})});
  at::Tensor logits =
      (*model)->Logits((*model)->Forward((*model)->Embed(batch_ids), positions, valid));
  EXPECT_LT(MaxAbsDiff(logits[0], FullLogits(**model, ids)), 1e-5);
  EXPECT_LT(MaxAbsDiff(logits[1].narrow(0, 14, 10), FullLogits(**model, ids.narrow(0, 0, 10))),
            1e-5);
  // Some rows kept (the last layer computes only those, in any order): the full pass's states.
  at::Tensor full = (*model)->Forward((*model)->Embed(batch_ids), positions, valid);
  at::Tensor keep = at::tensor(std::vector<int64_t>{23, 0, 5, 14, 23, 20}, at::kLong).view({2, 3});
  at::Tensor kept = (*model)->Forward((*model)->Embed(batch_ids), positions, valid, nullptr,
                                      nullptr, nullptr, keep);
  ASSERT_EQ(kept.sizes(), (std::vector<int64_t>{2, 3, full.size(2)}));
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t j = 0; j < 3; ++j) {
      EXPECT_LT(MaxAbsDiff(kept[b][j], full[b][keep[b][j].item<int64_t>()]), 1e-5)
          << "row " << b << " kept " << j;
    }
  }
}

TEST(CompressorTest, BatchedSegmentsEqualOneAtATime) {
  auto compressor = Compressor::Load(TestData("tiny-llama"), TestData("tiny-icae"), Runtime{});
  ASSERT_OK(compressor);
  std::vector<int> ids = ToIds(Expected("tiny-icae", "context40_ids"));
  std::vector<std::vector<int>> segments = {{ids.begin(), ids.begin() + 16},
                                            {ids.begin() + 3, ids.begin() + 7},
                                            {ids.begin(), ids.end()},
                                            {ids.begin() + 20, ids.begin() + 21}};
  auto batched = (*compressor)->CompressSegments(segments);
  ASSERT_OK(batched);
  ASSERT_EQ(batched->sizes(), (std::vector<int64_t>{4, 4, 64}));
  for (size_t i = 0; i < segments.size(); ++i) {
    auto alone = (*compressor)->CompressSegments({segments[i]});
    ASSERT_OK(alone);
    EXPECT_LT(MaxAbsDiff((*batched)[i], (*alone)[0]), 1e-5) << "segment " << i;
  }
  // Spans concatenate their segments' slots in order.
  auto span = (*compressor)->CompressSpan(ids);
  ASSERT_OK(span);
  EXPECT_LT(MaxAbsDiff(*span, Expected("tiny-icae", "slots40")), 1e-4);
}

TEST(CompressorTest, RejectsBadSegments) {
  auto compressor = Compressor::Load(TestData("tiny-llama"), TestData("tiny-icae"), Runtime{});
  ASSERT_OK(compressor);
  EXPECT_THAT((*compressor)->CompressSegments({{1, 2, 384}}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("segment 0[2] = 384")));
  EXPECT_THAT((*compressor)->CompressSegments({{1}, {}}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("segment 1 is empty")));
  EXPECT_FALSE((*compressor)->CompressSpan({}).ok());
}

// Rewrites tiny-llama as a tied-embedding model: no lm_head.weight, tie_word_embeddings true.
TEST(TransformerTest, TiedEmbeddingsUseTheEmbeddingMatrix) {
  ScratchDir dir;
  auto tensors = ReadAllTensors(TestData("tiny-llama/model.safetensors"));
  ASSERT_OK(tensors);
  SafetensorsWriter writer;
  at::Tensor embed;
  for (const auto& [name, t] : *tensors) {
    if (name == "lm_head.weight") continue;
    if (name == "model.embed_tokens.weight") embed = t;
    ASSERT_OK(AddTensor(writer, name, t));
  }
  ASSERT_OK(writer.WriteFile(dir.Join("model.safetensors")));
  auto config_text = ReadFileToString(TestData("tiny-llama/config.json"));
  ASSERT_OK(config_text);
  std::ofstream(dir.Join("config.json")) << absl::StrReplaceAll(
      *config_text, {{"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true"}});
  auto model = Transformer::Load(dir.path(), Runtime{});
  ASSERT_OK(model);
  c10::InferenceMode guard;
  at::Tensor ids = Expected("tiny-llama", "input_ids");
  at::Tensor hidden =
      (*model)->Forward((*model)->Embed(ids), at::arange(24, at::kLong).unsqueeze(0));
  EXPECT_LT(MaxAbsDiff((*model)->Logits(hidden), at::matmul(hidden, embed.t())), 1e-5);
  EXPECT_LT(MaxAbsDiff(hidden, Expected("tiny-llama", "last_hidden")), 1e-4);  // Body unchanged.

  // Untied without lm_head is an error naming the tensor.
  std::ofstream(dir.Join("config.json")) << *config_text;
  EXPECT_THAT(
      Transformer::Load(dir.path(), Runtime{}),
      testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("lm_head.weight")));
}

TEST(TransformerTest, ShardedCheckpointLoadsLikeTheSingleFile) {
  ScratchDir dir;
  auto tensors = ReadAllTensors(TestData("tiny-mistral/model.safetensors"));
  ASSERT_OK(tensors);
  SafetensorsWriter shard[2];
  nlohmann::json map = nlohmann::json::object();
  for (size_t i = 0; i < tensors->size(); ++i) {
    const auto& [name, t] = (*tensors)[i];
    const int s = i % 2;
    ASSERT_OK(AddTensor(shard[s], name, t));
    map[name] = s == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  ASSERT_OK(shard[0].WriteFile(dir.Join("model-00001-of-00002.safetensors")));
  ASSERT_OK(shard[1].WriteFile(dir.Join("model-00002-of-00002.safetensors")));
  std::ofstream(dir.Join("model.safetensors.index.json"))
      << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump();
  std::filesystem::copy(TestData("tiny-mistral/config.json"), dir.Join("config.json"));
  auto model = Transformer::Load(dir.path(), Runtime{});
  ASSERT_OK(model);
  EXPECT_LT(MaxAbsDiff(FullLogits(**model, Expected("tiny-mistral", "input_ids")),
                       Expected("tiny-mistral", "logits")[0]),
            1e-4);
}

TEST(TransformerTest, UnknownTensorsAreRefused) {
  ScratchDir dir;
  CopyDir(TestData("tiny-llama"), dir.path());
  auto tensors = ReadAllTensors(TestData("tiny-llama/model.safetensors"));
  ASSERT_OK(tensors);
  SafetensorsWriter writer;
  for (const auto& [name, t] : *tensors) ASSERT_OK(AddTensor(writer, name, t));
  ASSERT_OK(AddTensor(writer, "model.layers.0.self_attn.q_proj.bias", at::zeros({64})));
  ASSERT_OK(writer.WriteFile(dir.Join("model.safetensors")));
  EXPECT_THAT(
      Transformer::Load(dir.path(), Runtime{}),
      testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("q_proj.bias")));
}

TEST(TransformerTest, SlidingWindowIsHonouredByEveryPath) {
  ScratchDir dir;
  WriteWindowedMistral(dir.path(), 6);
  auto windowed = Transformer::Load(dir.path(), Runtime{});
  ASSERT_OK(windowed);
  ASSERT_EQ((*windowed)->config().sliding_window, 6);
  at::Tensor ids = Expected("tiny-mistral", "input_ids");
  at::Tensor full = FullLogits(**windowed, ids);
  // Positions inside the first window see everything anyway; later ones must differ.
  at::Tensor reference = Expected("tiny-mistral", "logits")[0];
  EXPECT_LT(MaxAbsDiff(full.narrow(0, 0, 6), reference.narrow(0, 0, 6)), 1e-4);
  EXPECT_GT(MaxAbsDiff(full.narrow(0, 6, 18), reference.narrow(0, 6, 18)), 1e-3);
  for (int64_t prefill : {1, 9}) {
    EXPECT_LT(MaxAbsDiff(CachedLogits(**windowed, ids, prefill), full), 1e-4) << prefill;
  }
}

TEST(TransformerTest, Bfloat16ComputeIsCloseToHf) {
  Runtime runtime;
  runtime.dtype = at::kBFloat16;
  auto model = Transformer::Load(TestData("tiny-mistral-bf16"), runtime);
  ASSERT_OK(model);
  at::Tensor logits = FullLogits(**model, Expected("tiny-mistral-bf16", "input_ids"));
  EXPECT_LT(MaxAbsDiff(logits, Expected("tiny-mistral-bf16", "logits_bf16_compute")[0]), 6e-2);
  EXPECT_LT(MaxAbsDiff(logits, Expected("tiny-mistral-bf16", "logits")[0]), 6e-2);
}

TEST(WeightsTest, SaveHfModelRoundTrips) {
  ScratchDir dir;
  auto config = LoadModelConfig(TestData("tiny-mistral"));
  ASSERT_OK(config);
  auto weights = LoadWeights(TestData("tiny-mistral"), *config, nullptr, at::kFloat, at::kCPU);
  ASSERT_OK(weights);
  ASSERT_OK(SaveHfModel(dir.path(), *config, *weights, at::kFloat));
  auto model = Transformer::Load(dir.path(), Runtime{});
  ASSERT_OK(model);
  EXPECT_LT(MaxAbsDiff(FullLogits(**model, Expected("tiny-mistral", "input_ids")),
                       Expected("tiny-mistral", "logits")[0]),
            1e-4);
  // Random weights are reproducible from the seed.
  TransformerWeights a = RandomWeights(*config, 7), b = RandomWeights(*config, 7),
                     c = RandomWeights(*config, 8);
  EXPECT_TRUE(a.layers[1].wqkv.equal(b.layers[1].wqkv));
  EXPECT_FALSE(a.layers[1].wqkv.equal(c.layers[1].wqkv));
}

TEST(RuntimeTest, CudaFailsClearlyOnThisBuild) {
  RuntimeOptions options;
  options.device = "cuda";
  auto runtime = ResolveRuntime(options);
  if (at::hasCUDA()) {
    EXPECT_OK(runtime);  // A CUDA build resolves the device instead.
  } else {
    EXPECT_THAT(runtime, testing::StatusIs(absl::StatusCode::kFailedPrecondition,
                                           ::testing::HasSubstr("no CUDA support")));
  }
  options.device = "tpu";
  EXPECT_THAT(ResolveRuntime(options), testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                         ::testing::HasSubstr("--device")));
  options.device = "cpu";
  options.dtype = "int8";
  EXPECT_THAT(ResolveRuntime(options), testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                         ::testing::HasSubstr("--dtype")));
}

}  // namespace
}  // namespace icae
