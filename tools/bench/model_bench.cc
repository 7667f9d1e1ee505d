// icae-bench-model: compression and decode speed of the model core on a random ~134M Llama
// (hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000), each next to a baseline
// measured in the same run: a GEMM of the model's largest shape for compression, the read
// bandwidth (a sum over 1 GiB, read once) and a 256 MiB copy for decode.
//
//   build/bin/icae-bench-model [--threads 2] [--dtypes float32,bfloat16] [--repeats 3]
//     [--paths native,aten]: each figure through the project's kernels and through ATen alone
//   build/bin/icae-bench-model --model DIR --adapter A --cross PACKAGE: a cross-model encoder's
//     compression on the same segments in the same run, with the ratio to the ICAE encoder and
//     both encoders' weight bytes.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/base/flags.h"
#include "common/base/process_setup.h"
#include "common/io/mapped_file.h"
#include "nlohmann/json.hpp"
#include "common/model/adapter_writer.h"
#include "common/model/compressor.h"
#include "common/model/model_config.h"
#include "common/model/ops.h"
#include "common/model/slot_decoder.h"
#include "common/model/weights.h"
#include "tools/bench/model_bench_kernels.h"
#include "tools/bench/random_icae_model.h"

namespace icae {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Forward FLOPs of compressing `rows` segments of `positions` (tokens + memory) positions, of
// which `kept` (the memory rows, the last ones) leave the encoder: the projections and MLP (2 *
// params per position) plus the two attention matmuls over the keys each query sees (causal: the
// triangle, p + 1 keys for the query at p; the dense ATen path computes the whole square, the
// tiled kernel about the triangle) in every layer but the last, which projects q, k and v for
// every position and computes attention, o and the MLP for the kept rows only
// (Transformer::Forward's keep_rows).
double CompressionFlops(const ModelConfig& c, int64_t rows, int64_t positions, int64_t kept) {
  const double h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  const double qkv = h * (q + 2 * kv), rest = q * h + 3 * h * inter;
  const double p = static_cast<double>(positions);
  const double seen_all = p * (p + 1) / 2, seen_kept = kept * p - kept * (kept - 1) / 2.0;
  const double full_layer = 2.0 * p * (qkv + rest) + 4.0 * seen_all * q;
  const double last_layer = 2.0 * p * qkv + 4.0 * seen_kept * q + 2.0 * kept * rest;
  return rows * ((c.num_layers - 1) * full_layer + last_layer);
}

// Bytes of weights one decode step reads: every layer matrix and the lm_head.
double DecodeWeightBytes(const ModelConfig& c, int64_t item_size) {
  const double h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  return item_size * (c.num_layers * (h * (q + 2 * kv) + q * h + 3 * h * inter) +
                      static_cast<double>(c.vocab_size) * h);
}

int Main(int argc, char** argv) {
  int threads = 2, repeats = 3, decode_steps = 32, context = 512, kv_block_tokens = 0;
  std::string dtypes = "float32,bfloat16", workdir = "/tmp/icae-bench-model", device = "cpu";
  std::string json_out, model_path, adapter_path, cross_path, paths = "native,aten";
  std::string phases = "compression,decode", decode_batches = "1,8";
  FlagSet flags(
      "icae-bench-model [--threads N] [--dtypes float32,bfloat16] [--device cpu|cuda] "
      "[--model DIR [--adapter PATH]] [--paths native,aten] [--json OUT]");
  flags.Int("threads", &threads, "intra-op threads");
  flags.Int("repeats", &repeats, "timed repeats (the best is reported)");
  flags.Int("decode_steps", &decode_steps, "decode steps timed per batch size");
  flags.String("decode_batches", &decode_batches, "decode batch sizes measured (1..64)");
  flags.Int("context", &context, "tokens per segment, and prefilled context before decode");
  flags.Int("kv_block_tokens", &kv_block_tokens,
            "decode: the caches in a KV pool of blocks of this many positions, as the decoder "
            "service keeps them (0 = tensors of their own)");
  flags.String("dtypes", &dtypes, "compute dtypes to measure");
  flags.String("workdir", &workdir, "where the random model is written");
  flags.String("device", &device, "cpu, cuda or cuda:N");
  flags.String("json", &json_out, "also write every figure as JSON to this file");
  flags.String("model", &model_path, "an HF model directory to measure instead of the random one");
  flags.String("adapter", &adapter_path, "the ICAE adapter for --model (default: a random one)");
  flags.String("cross", &cross_path,
               "also a cross-encoder package for --model: its compression on the same segments");
  flags.String("phases", &phases,
               "what to measure: compression, decode, mixed (a prefill chunk riding along a "
               "decode step of 8), products (the small-batch product at 1-16 rows on the "
               "model's weight shapes, beside ATen's GEMM on the same shapes) and/or elementwise "
               "(a layer's norm, RoPE and SiLU x up through the kernels and through ATen)");
  flags.String("paths", &paths,
               "paths to measure compression and decode through: native (the project's CPU "
               "kernels, the tiled prefill attention included), aten, or both");
  ParseFlagsOrExit(flags, argc, argv);
  // Checked once here: compression and decode both loop over the paths.
  for (absl::string_view path : absl::StrSplit(paths, ',')) {
    if (path != "native" && path != "aten") {
      std::fprintf(stderr, "--paths: expected native and/or aten, got '%s'\n",
                   std::string(path).c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  KeepFreedMemoryForReuse();  // As the services do: no page faults for every fresh tensor.
  nlohmann::json report = {{"device", device}, {"threads", threads}, {"context", context},
                           {"results", nlohmann::json::array()}};

  // Default: a random Llama of hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000
  // (~134M parameters). --model DIR measures any HF directory instead (e.g. models/demo/base),
  // with --adapter or a random q/v adapter written to the workdir.
  ModelConfig config = RandomLlamaConfig(768, 12, 12, 2048, 32000, 4096);
  std::string model_dir = workdir, adapter_dir = workdir;
  if (!model_path.empty()) {
    auto loaded = LoadModelConfig(model_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
      return 1;
    }
    config = *loaded;
    model_dir = model_path;
    if (!adapter_path.empty()) adapter_dir = adapter_path;
  }
  std::printf(
      "model: %s, %.1fM parameters (hidden %d, %d layers, %d heads, %d kv heads, "
      "intermediate %d, vocab %d); device %s, threads %d\n",
      model_path.empty() ? "random Llama" : model_path.c_str(), config.ParameterCount() / 1e6,
      config.hidden_size, config.num_layers, config.num_heads, config.num_kv_heads,
      config.intermediate_size, config.vocab_size, device.c_str(), threads);
  report["model"] = model_path.empty() ? "random-134m" : model_path;
  {
    if (model_path.empty()) {
      TransformerWeights weights = RandomWeights(config, 1234);
      if (absl::Status s = SaveHfModel(workdir, config, weights, at::kFloat); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
    }
    if (adapter_path.empty()) {
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
  }

  RuntimeOptions device_options;
  device_options.device = device;
  auto device_runtime = ResolveRuntime(device_options);
  if (!device_runtime.ok()) {
    std::fprintf(stderr, "%s\n", device_runtime.status().ToString().c_str());
    return 2;
  }
  const at::Device dev = device_runtime->device;

  // The decode figures' same-run limits, measured only when decode is (they take a few seconds).
  double memcpy_gbs = 0, read_gbs = 0;
  if (absl::StrContains(phases, "decode")) {
    // Copy baseline on the device (bytes copied per second, LibTorch's parallel copy).
    at::Tensor src = at::rand({64 * 1024 * 1024}, at::TensorOptions().device(dev));  // 256 MiB
    at::Tensor dst = at::empty_like(src);
    const double copy_s = BestOf(repeats, dev, [&] { dst.copy_(src); });
    memcpy_gbs = src.numel() * 4 / copy_s / 1e9;
    report["copy_gbs"] = memcpy_gbs;
    src = at::Tensor();
    dst = at::Tensor();
    // Read bandwidth: a sum over 1 GiB (four times the largest cache reported here), which reads
    // every byte once and writes nothing: the limit of a decode step's weight stream.
    at::Tensor big = at::ones({256 * 1024 * 1024}, at::TensorOptions().device(dev));
    const double read_s = BestOf(repeats, dev, [&] { big.sum(); });
    read_gbs = big.numel() * 4 / read_s / 1e9;
    report["read_gbs"] = read_gbs;
  }

  std::vector<int> batches;
  for (absl::string_view piece : absl::StrSplit(decode_batches, ',', absl::SkipEmpty())) {
    int b = 0;
    if (!absl::SimpleAtoi(piece, &b) || b < 1 || b > 64) {
      std::fprintf(stderr, "--decode_batches: '%s' is not a batch size in 1..64\n",
                   std::string(piece).c_str());
      return 2;
    }
    batches.push_back(b);
  }
  for (absl::string_view dtype_name : absl::StrSplit(dtypes, ',')) {
    RuntimeOptions options = device_options;
    options.dtype = std::string(dtype_name);
    auto runtime = ResolveRuntime(options);
    if (!runtime.ok()) {
      std::fprintf(stderr, "%s\n", runtime.status().ToString().c_str());
      return 2;
    }
    c10::InferenceMode guard;
    std::printf("\n== compute dtype %s ==\n", std::string(dtype_name).c_str());
    if (absl::StrContains(phases, "products")) {
      MeasureProducts(config, runtime->dtype, std::string(dtype_name), runtime->device, repeats,
                      report);
    }
    auto compressor = Compressor::Load(model_dir, adapter_dir, *runtime);
    if (!compressor.ok()) {
      std::fprintf(stderr, "%s\n", compressor.status().ToString().c_str());
      return 1;
    }
    // One segment per row: the context, or the adapter's longest segment if that is shorter.
    const int seg = std::min(context, (*compressor)->max_segment_tokens());
    const int64_t positions = seg + (*compressor)->mem_size();
    if (absl::StrContains(phases, "elementwise") && !dev.is_cpu()) {
      std::printf("elementwise: the element-wise kernels are CPU kernels; not measured on %s\n",
                  dev.str().c_str());
    } else if (absl::StrContains(phases, "elementwise")) {
      // A decode step's rows and a compression's (one segment and eight).
      MeasureElementwise(config, runtime->dtype, std::string(dtype_name),
                         {1, 8, positions, 8 * positions}, repeats * 20, report);
    }
    const bool measure_compression = absl::StrContains(phases, "compression");
    if (measure_compression) {
      std::printf("%-34s %12s %10s %10s %8s\n", "compression", "tokens/s", "GFLOP/s",
                  "GEMM GF/s", "ratio");
    }
    std::unique_ptr<Compressor> cross;
    if (!cross_path.empty() && measure_compression) {
      auto loaded = Compressor::Load(model_dir, cross_path, *runtime);
      if (!loaded.ok()) {
        std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
        return 1;
      }
      cross = *std::move(loaded);
      if (cross->max_segment_tokens() != (*compressor)->max_segment_tokens() ||
          cross->mem_size() != (*compressor)->mem_size()) {
        std::fprintf(stderr, "--cross %s has another segment plan than --adapter\n",
                     cross_path.c_str());
        return 2;
      }
      auto weight_bytes = [](const Compressor& c) {
        double bytes = 0;
        for (const at::Tensor& t :
             c.transformer().weights().Parameters(c.config().tie_word_embeddings)) {
          bytes += t.numel() * t.element_size();
        }
        return bytes;
      };
      const double icae_bytes = weight_bytes(**compressor), cross_bytes = weight_bytes(*cross);
      std::printf("%-34s %9.1f MiB (ICAE encoder: %.1f MiB, %.1fx)\n", "cross encoder weights",
                  cross_bytes / (1 << 20), icae_bytes / (1 << 20), icae_bytes / cross_bytes);
      report["results"].push_back({{"phase", "encoder_weights"},
                                   {"dtype", std::string(dtype_name)},
                                   {"icae_bytes", icae_bytes},
                                   {"cross_bytes", cross_bytes}});
    }
    // Each compression figure through the project's kernels (the tiled prefill attention) and,
    // with --paths aten, through ATen alone (dense attention), in the same run.
    for (absl::string_view path : absl::StrSplit(paths, ',')) {
    if (!measure_compression) break;
    SetCpuKernelsEnabled(path == "native");
    for (int batch : {1, 8}) {
      std::vector<std::vector<int>> segments(batch);
      for (int b = 0; b < batch; ++b) {
        for (int t = 0; t < seg; ++t)
          segments[b].push_back(3 + (t * 7919 + b * 104729) % (config.vocab_size - 3));
      }
      const double s =
          BestOf(repeats, dev, [&] { (void)(*compressor)->CompressSegments(segments); });
      // Baseline: the model's largest GEMM (fused gate/up) on the same number of positions.
      const auto opts = at::TensorOptions().device(dev).dtype(runtime->dtype);
      at::Tensor x = at::randn({batch * positions, config.hidden_size}, opts);
      at::Tensor w = at::randn({2 * config.intermediate_size, config.hidden_size}, opts);
      const double gemm_s = BestOf(repeats, dev, [&] { (void)at::linear(x, w); });
      const double gemm_gflops = 2.0 * x.size(0) * w.size(0) * w.size(1) / gemm_s / 1e9;
      const double gflops =
          CompressionFlops(config, batch, positions, (*compressor)->mem_size()) / s / 1e9;
      std::printf("%-34s %12.0f %10.1f %10.1f %7.0f%%\n",
                  (std::to_string(batch) + " x " + std::to_string(seg) + " tokens (+" +
                   std::to_string((*compressor)->mem_size()) + " mem) " + std::string(path))
                      .c_str(),
                  batch * seg / s, gflops, gemm_gflops, 100.0 * gflops / gemm_gflops);
      report["results"].push_back({{"phase", "compression"},
                                   {"dtype", std::string(dtype_name)},
                                   {"path", std::string(path)},
                                   {"batch", batch},
                                   {"tokens_per_s", batch * seg / s},
                                   {"gflops", gflops},
                                   {"gemm_gflops", gemm_gflops}});
      if (cross && path == "native") {
        const double cross_s =
            BestOf(repeats, dev, [&] { (void)cross->CompressSegments(segments); });
        std::printf("%-34s %12.0f %32.1fx the ICAE encoder\n",
                    ("  cross encoder, " + std::to_string(batch) + " x " + std::to_string(seg))
                        .c_str(),
                    batch * seg / cross_s, s / cross_s);
        report["results"].push_back({{"phase", "cross_compression"},
                                     {"dtype", std::string(dtype_name)},
                                     {"batch", batch},
                                     {"tokens_per_s", batch * seg / cross_s},
                                     {"icae_tokens_per_s", batch * seg / s}});
      }
    }
    }
    SetCpuKernelsEnabled(true);
    cross.reset();
    compressor->reset();

    auto decoder = SlotDecoder::Load(model_dir, adapter_dir, *runtime);
    if (!decoder.ok()) {
      std::fprintf(stderr, "%s\n", decoder.status().ToString().c_str());
      return 1;
    }
    const Transformer& model = (*decoder)->transformer();
    const double weight_bytes = DecodeWeightBytes(config, at::elementSize(runtime->dtype));
    for (absl::string_view path : absl::StrSplit(paths, ',')) {
    if (!absl::StrContains(phases, "decode") && !absl::StrContains(phases, "mixed")) break;
    SetCpuKernelsEnabled(path == "native");
    const std::string decode_label = absl::StrCat(
        "decode (", context, "-token context, ", path,
        kv_block_tokens > 0 ? absl::StrCat(", blocks of ", kv_block_tokens) : "", ")");
    const bool decode = absl::StrContains(phases, "decode");
    if (decode) {
      std::printf("%-34s %12s %10s %10s %10s %8s\n", decode_label.c_str(), "tokens/s",
                  "weight GB/s", "read GB/s", "copy GB/s", "of read");
    }
    for (int batch : decode ? batches : std::vector<int>{}) {
      std::vector<KVCache> caches;
      caches.reserve(batch);
      at::Tensor prompt = model.Embed(at::arange(3, 3 + context, at::kLong) % config.vocab_size);
      // Every repeat runs decode_steps more steps on the same caches (the best run is reported,
      // as for every other figure here), so later runs start up to repeats x steps deeper.
      const int64_t capacity = context + static_cast<int64_t>(decode_steps) * repeats + 1;
      std::shared_ptr<KvBlockPool> pool =
          kv_block_tokens > 0
              ? model.NewBlockPool(batch * ((capacity + kv_block_tokens - 1) / kv_block_tokens),
                                   kv_block_tokens)
              : nullptr;
      for (int b = 0; b < batch; ++b) {
        caches.push_back(pool != nullptr ? model.NewCache(pool, capacity)
                                         : model.NewCache(capacity));
        model.Prefill(prompt, caches.back());
      }
      std::vector<KVCache*> pointers;
      for (KVCache& c : caches) pointers.push_back(&c);
      at::Tensor tokens = model.Embed(at::full({batch}, 42 % config.vocab_size, at::kLong));
      model.Logits(model.DecodeStep(tokens, pointers));  // Warm-up.
      Sync(dev);
      double s = 1e30;
      for (int r = 0; r < repeats; ++r) {
        auto start = Clock::now();
        for (int step = 0; step < decode_steps; ++step) {
          at::Tensor logits = model.Logits(model.DecodeStep(tokens, pointers));
          tokens = model.Embed(logits.argmax(-1));
        }
        Sync(dev);
        s = std::min(s, Seconds(start));
      }
      const double weight_gbs = weight_bytes * decode_steps / s / 1e9;
      std::printf("%-34s %12.1f %10.1f %10.1f %10.1f %7.0f%%\n",
                  ("batch " + std::to_string(batch)).c_str(), batch * decode_steps / s, weight_gbs,
                  read_gbs, memcpy_gbs, 100.0 * weight_gbs / read_gbs);
      report["results"].push_back({{"phase", "decode"},
                                   {"path", std::string(path)},
                                   {"dtype", std::string(dtype_name)},
                                   {"batch", batch},
                                   {"kv_block_tokens", kv_block_tokens},
                                   {"tokens_per_s", batch * decode_steps / s},
                                   {"weight_gbs", weight_gbs},
                                   {"copy_gbs", memcpy_gbs},
                                   {"read_gbs", read_gbs}});
    }
    if (!absl::StrContains(phases, "mixed")) continue;
    // A prefill chunk riding along a decode step of 8 sequences (the decoder's --mixed_step_rows)
    // against the step alone and against the step plus a Prefill of the same positions (chunks
    // as steps of their own): milliseconds per step; the sequences 64 positions deep, the chunk's
    // after --context positions.
    std::printf("%-34s %10s %12s %14s %10s\n",
                absl::StrCat("decode 8 + chunk (", path, ")").c_str(), "step ms", "+chunk ms",
                "+prefill ms", "ratio");
    for (int n : {1, 2, 4, 8, 16}) {
      constexpr int kBatch = 8;
      // The running sequences 64 positions deep, the chunk's `context` (a long arrival).
      at::Tensor prompt = model.Embed(at::arange(3, 3 + context, at::kLong) % config.vocab_size);
      std::vector<KVCache> caches;
      for (int b = 0; b < kBatch; ++b) {
        caches.push_back(model.NewCache(64 + 3 * decode_steps + 1));
        model.Prefill(prompt.narrow(0, 0, std::min<int64_t>(64, context)), caches.back());
      }
      std::vector<KVCache*> pointers;
      for (KVCache& c : caches) pointers.push_back(&c);
      KVCache long_cache = model.NewCache(context + 2 * n * decode_steps + n);
      model.Prefill(prompt, long_cache);
      at::Tensor chunk_embeds = model.Embed(at::arange(7, 7 + n, at::kLong) % config.vocab_size);
      at::Tensor tokens = model.Embed(at::full({kBatch}, 42 % config.vocab_size, at::kLong));
      auto time_steps = [&](int what) {  // 0: step alone, 1: with the chunk, 2: step + Prefill
        at::Tensor hidden;
        Sync(dev);
        auto start = Clock::now();
        for (int step = 0; step < decode_steps; ++step) {
          if (what == 1) {
            model.Logits(model.DecodeStep(tokens, pointers,
                                          Transformer::StepChunk{chunk_embeds, &long_cache},
                                          &hidden));
          } else {
            model.Logits(model.DecodeStep(tokens, pointers));
            if (what == 2) model.Prefill(chunk_embeds, long_cache);
          }
        }
        Sync(dev);
        return 1e3 * Seconds(start) / decode_steps;
      };
      model.Logits(model.DecodeStep(tokens, pointers));  // Warm-up.
      const double alone = time_steps(0), carried = time_steps(1), apart = time_steps(2);
      std::printf("%-34s %10.1f %12.1f %14.1f %9.2fx\n", absl::StrCat("chunk ", n).c_str(), alone,
                  carried, apart, carried / alone);
      report["results"].push_back({{"phase", "mixed"},
                                   {"path", std::string(path)},
                                   {"dtype", std::string(dtype_name)},
                                   {"chunk", n},
                                   {"step_ms", alone},
                                   {"carried_ms", carried},
                                   {"apart_ms", apart}});
    }
    }
    SetCpuKernelsEnabled(true);
  }
  if (!json_out.empty()) {
    if (absl::Status st = WriteStringToFile(json_out, report.dump(2) + "\n"); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace icae

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  return icae::Main(argc, argv);
}
