// icae-bench-model: compression and decode speed of the model core on a random ~134M Llama
// (hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000), each next to a baseline
// measured in the same run: a GEMM of the model's largest shape for compression, a large memcpy
// for decode.
//
//   build/bin/icae-bench-model [--threads 2] [--dtypes float32,bfloat16] [--repeats 3]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/flags.h"
#include "common/model/adapter_writer.h"
#include "common/model/compressor.h"
#include "common/model/slot_decoder.h"
#include "common/model/weights.h"
#include "tools/bench/random_icae_model.h"

namespace icae {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Best (minimum) wall time of `repeats` runs of `fn`, after one warm-up run.
template <typename Fn>
double BestOf(int repeats, Fn&& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto start = Clock::now();
    fn();
    best = std::min(best, Seconds(start));
  }
  return best;
}

// Forward FLOPs of compressing `rows` segments of `positions` (tokens + memory) positions: the
// projections and MLP (2 * params per position) plus the two attention matmuls over the full
// square (what the dense kernels compute).
double CompressionFlops(const ModelConfig& c, int64_t rows, int64_t positions) {
  const double h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  const double linear = h * (q + 2 * kv) + q * h + 3 * h * inter;
  const double per_row =
      c.num_layers * (2.0 * positions * linear + 4.0 * positions * positions * q);
  return rows * per_row;
}

// Bytes of weights one decode step reads: every layer matrix and the lm_head.
double DecodeWeightBytes(const ModelConfig& c, int64_t item_size) {
  const double h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  return item_size * (c.num_layers * (h * (q + 2 * kv) + q * h + 3 * h * inter) +
                      static_cast<double>(c.vocab_size) * h);
}

int Main(int argc, char** argv) {
  int threads = 2, repeats = 3, decode_steps = 32, context = 512;
  std::string dtypes = "float32,bfloat16", workdir = "/tmp/icae-bench-model";
  FlagSet flags("icae-bench-model [--threads N] [--dtypes float32,bfloat16]");
  flags.Int("threads", &threads, "intra-op threads");
  flags.Int("repeats", &repeats, "timed repeats (the best is reported)");
  flags.Int("decode_steps", &decode_steps, "decode steps timed per batch size");
  flags.Int("context", &context, "tokens per segment, and prefilled context before decode");
  flags.String("dtypes", &dtypes, "compute dtypes to measure");
  flags.String("workdir", &workdir, "where the random model is written");
  ParseFlagsOrExit(flags, argc, argv);
  at::set_num_threads(threads);

  // Hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000: ~134M parameters.
  const ModelConfig config = RandomLlamaConfig(768, 12, 12, 2048, 32000, 4096);
  std::printf(
      "model: random Llama, %.1fM parameters (hidden %d, %d layers, %d heads, "
      "intermediate %d, vocab %d); threads %d\n",
      config.ParameterCount() / 1e6, config.hidden_size, config.num_layers, config.num_heads,
      config.intermediate_size, config.vocab_size, threads);
  {
    TransformerWeights weights = RandomWeights(config, 1234);
    if (absl::Status s = SaveHfModel(workdir, config, weights, at::kFloat); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    AdapterConfig ac;
    ac.r = 16;
    ac.lora_alpha = 32;
    ac.mem_size = context / 4;
    ac.compression_rate = 4;
    ac.target_modules = {"q_proj", "v_proj"};
    if (absl::Status s = SaveIcaeAdapter(workdir, RandomAdapter(config, ac, 99), "bench");
        !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }

  // Same-run memcpy baseline (bytes copied per second, LibTorch's parallel copy).
  at::Tensor src = at::rand({64 * 1024 * 1024});  // 256 MiB
  at::Tensor dst = at::empty_like(src);
  const double copy_s = BestOf(repeats, [&] { dst.copy_(src); });
  const double memcpy_gbs = src.numel() * 4 / copy_s / 1e9;

  for (absl::string_view dtype_name : absl::StrSplit(dtypes, ',')) {
    RuntimeOptions options;
    options.dtype = std::string(dtype_name);
    auto runtime = ResolveRuntime(options);
    if (!runtime.ok()) {
      std::fprintf(stderr, "%s\n", runtime.status().ToString().c_str());
      return 2;
    }
    c10::InferenceMode guard;
    std::printf("\n== compute dtype %s ==\n", std::string(dtype_name).c_str());
    auto compressor = Compressor::Load(workdir, workdir, *runtime);
    if (!compressor.ok()) {
      std::fprintf(stderr, "%s\n", compressor.status().ToString().c_str());
      return 1;
    }
    const int64_t positions = context + (*compressor)->mem_size();
    std::printf("%-34s %12s %10s %10s %8s\n", "compression", "tokens/s", "GFLOP/s", "GEMM GF/s",
                "ratio");
    for (int batch : {1, 8}) {
      std::vector<std::vector<int>> segments(batch);
      for (int b = 0; b < batch; ++b) {
        for (int t = 0; t < context; ++t)
          segments[b].push_back(3 + (t * 7919 + b * 104729) % 31000);
      }
      const double s = BestOf(repeats, [&] { (void)(*compressor)->CompressSegments(segments); });
      // Baseline: the model's largest GEMM (fused gate/up) on the same number of positions.
      at::Tensor x = at::randn({batch * positions, config.hidden_size}).to(runtime->dtype);
      at::Tensor w =
          at::randn({2 * config.intermediate_size, config.hidden_size}).to(runtime->dtype);
      const double gemm_s = BestOf(repeats, [&] { (void)at::linear(x, w); });
      const double gemm_gflops = 2.0 * x.size(0) * w.size(0) * w.size(1) / gemm_s / 1e9;
      const double gflops = CompressionFlops(config, batch, positions) / s / 1e9;
      std::printf("%-34s %12.0f %10.1f %10.1f %7.0f%%\n",
                  (std::to_string(batch) + " x " + std::to_string(context) + " tokens (+" +
                   std::to_string((*compressor)->mem_size()) + " mem)")
                      .c_str(),
                  batch * context / s, gflops, gemm_gflops, 100.0 * gflops / gemm_gflops);
    }
    compressor->reset();

    auto decoder = SlotDecoder::Load(workdir, workdir, *runtime);
    if (!decoder.ok()) {
      std::fprintf(stderr, "%s\n", decoder.status().ToString().c_str());
      return 1;
    }
    const Transformer& model = (*decoder)->transformer();
    const double weight_bytes = DecodeWeightBytes(config, at::elementSize(runtime->dtype));
    const std::string decode_label = absl::StrCat("decode (", context, "-token context)");
    std::printf("%-34s %12s %10s %10s %8s\n", decode_label.c_str(), "tokens/s", "weight GB/s",
                "memcpy GB/s", "ratio");
    for (int batch : {1, 8}) {
      std::vector<KVCache> caches;
      at::Tensor prompt = model.Embed(at::arange(3, 3 + context, at::kLong));
      for (int b = 0; b < batch; ++b) {
        caches.push_back(model.NewCache(context + decode_steps + 1));
        model.Prefill(prompt, caches.back());
      }
      std::vector<KVCache*> pointers;
      for (KVCache& c : caches) pointers.push_back(&c);
      at::Tensor tokens = model.Embed(at::full({batch}, 42, at::kLong));
      model.Logits(model.DecodeStep(tokens, pointers));  // Warm-up.
      auto start = Clock::now();
      for (int step = 0; step < decode_steps; ++step) {
        at::Tensor logits = model.Logits(model.DecodeStep(tokens, pointers));
        tokens = model.Embed(logits.argmax(-1));
      }
      const double s = Seconds(start);
      const double weight_gbs = weight_bytes * decode_steps / s / 1e9;
      std::printf("%-34s %12.1f %10.1f %10.1f %7.0f%%\n",
                  ("batch " + std::to_string(batch)).c_str(), batch * decode_steps / s, weight_gbs,
                  memcpy_gbs, 100.0 * weight_gbs / memcpy_gbs);
    }
  }
  return 0;
}

}  // namespace
}  // namespace icae

int main(int argc, char** argv) { return icae::Main(argc, argv); }
