// icae-bench-encoder: the encoder service over loopback against the same spans compressed
// in-process, on a random ~134M Llama (hidden 768, 12 layers) with a random ICAE adapter
// (mem_size 128, rate 4: a 512-token span is one segment of 128 slots).
//
//   build/bin/icae-bench-encoder [--dtype float32|bfloat16] [--threads 2]
//                                [--concurrency 1,4,16,64] [--span_tokens 512]
//
// Writes the model to a temporary directory (or reuses the one in --work_dir), loads it in this
// process too, and starts build/bin/icae-encoder on 127.0.0.1:0. Then:
//  - concurrency 1 over gRPC against in-process compression (Compressor::CompressSpan plus the
//    conversion to wire bytes), alternating span by span so both see the same machine;
//  - each concurrency level: max(8, 2 x concurrency) distinct spans (cache bypassed), split over
//    --rounds rounds that each run every level once (other load on a shared host then falls on
//    all levels alike): throughput (tokens/s), p50/p99 latency, mean model batch size (from the
//    server's own metrics), the server's page faults per request;
//  - cache hits of one span against the misses above.
// Prints the figures and the ratios next to the targets:
//   throughput at concurrency 16 >= 2x concurrency 1; gRPC + codec overhead at concurrency 1
//   <= 5% of in-process time; a cache hit's p50 <= 1% of a miss's.
#include <ATen/ATen.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/flags.h"
#include "common/base/status_macros.h"
#include "common/client/encoder_client.h"
#include "common/model/compressor.h"
#include "common/model/runtime_options.h"
#include "common/base/process_setup.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/random_icae_model.h"

namespace icae::bench {
namespace {

struct Options {
  std::string dtype = "float32";
  int threads = 2;
  std::string concurrency = "1,4,16,64";
  int span_tokens = 512;
  int min_requests = 8;
  int rounds = 2;
  std::string sweep_batches;
  int cache_hits = 32;
  int lora_r = 64;
  std::string work_dir;
  std::string bin_dir;
  bool keep = false;
  std::string server_flags;
};

std::string SelfDir() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "build/bin";
  std::string self(path, static_cast<size_t>(n));
  return self.substr(0, self.find_last_of('/'));
}

std::vector<int> RandomSpan(int tokens, int vocab, std::mt19937& rng) {
  std::vector<int> ids(tokens);
  for (int& id : ids) id = 3 + static_cast<int>(rng() % static_cast<unsigned>(vocab - 3));
  return ids;
}

v1::CompressRequest SpanRequest(const std::vector<int>& ids, bool bypass_cache) {
  v1::CompressRequest request;
  request.set_bypass_cache(bypass_cache);
  request.add_spans()->mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  return request;
}

struct Level {
  int concurrency = 0;
  int requests = 0;
  int span_tokens = 0;
  double seconds = 0;             // wall time of the level
  std::vector<double> latencies;  // per request, seconds
  double batches = 0;             // model batches the server ran during the level
  double batch_segments = 0;      // segments in them
  int64_t minor_faults = 0;       // the server's page faults during the level
  double mean_batch() const { return batches > 0 ? batch_segments / batches : 0; }
  // Adds another round of the same level.
  void Add(const Level& round) {
    requests += round.requests;
    seconds += round.seconds;
    latencies.insert(latencies.end(), round.latencies.begin(), round.latencies.end());
    batches += round.batches;
    batch_segments += round.batch_segments;
    minor_faults += round.minor_faults;
  }
  double tokens_per_second() const { return requests * static_cast<double>(span_tokens) / seconds; }
};

// Runs `count` requests from `concurrency` threads; every request is a fresh span.
absl::StatusOr<Level> RunLevel(const EncoderClient& client, const ChildServer& server,
                               int concurrency, int count, int span_tokens, int vocab,
                               uint64_t seed) {
  const int metrics_port = server.metrics_port();
  std::vector<std::vector<int>> spans;
  std::mt19937 rng(static_cast<unsigned>(seed));
  for (int i = 0; i < count; ++i) spans.push_back(RandomSpan(span_tokens, vocab, rng));
  ASSIGN_OR_RETURN(std::string before, ScrapeMetrics(metrics_port));
  Level level;
  const int64_t faults_before = server.MinorFaults();
  level.concurrency = concurrency;
  level.requests = count;
  level.span_tokens = span_tokens;
  std::atomic<int> next{0};
  absl::Mutex mu;
  absl::Status failure;
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        const v1::CompressRequest request = SpanRequest(spans[i], /*bypass_cache=*/true);
        const absl::Time t0 = absl::Now();
        absl::StatusOr<v1::CompressResponse> response = client.Compress(request);
        const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
        absl::MutexLock lock(&mu);
        if (!response.ok()) {
          failure = response.status();
          return;
        }
        level.latencies.push_back(seconds);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  level.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  RETURN_IF_ERROR(failure);
  ASSIGN_OR_RETURN(std::string after, ScrapeMetrics(metrics_port));
  level.batches = SampleValue(after, "icae_encoder_batch_segments_count") -
                  SampleValue(before, "icae_encoder_batch_segments_count");
  level.batch_segments = SampleValue(after, "icae_encoder_batch_segments_sum") -
                         SampleValue(before, "icae_encoder_batch_segments_sum");
  level.minor_faults = server.MinorFaults() - faults_before;
  return level;
}

int Run(int argc, char** argv) {
  // The same allocator settings as icae-encoder's main, so that the in-process baseline does the
  // same work (without them every large activation is a fresh mmap and page faults dominate).
  KeepFreedMemoryForReuse();
  Options o;
  FlagSet flags("icae-bench-encoder [options]");
  flags.String("dtype", &o.dtype, "server and in-process compute dtype: float32 | bfloat16");
  flags.Int("threads", &o.threads, "LibTorch intra-op threads (server and in-process)");
  flags.String("concurrency", &o.concurrency, "comma-separated client concurrency levels");
  flags.Int("span_tokens", &o.span_tokens, "tokens per span (512 = one segment)");
  flags.Int("min_requests", &o.min_requests, "requests per level: max(this, 2 x concurrency)");
  flags.String("sweep_batches", &o.sweep_batches,
               "also time in-process model calls on these batch sizes, e.g. 1,4,12 (off: empty)");
  flags.Int("rounds", &o.rounds, "rounds over the levels (each gets its share of requests)");
  flags.Int("cache_hits", &o.cache_hits, "cache-hit requests measured");
  flags.Int("lora_r", &o.lora_r, "LoRA rank of the random adapter");
  flags.String("work_dir", &o.work_dir, "where the model is written (default: a temp dir)");
  flags.String("bin_dir", &o.bin_dir, "directory of icae-encoder (default: beside this binary)");
  flags.Bool("keep", &o.keep, "keep the work directory");
  flags.String("server_flags", &o.server_flags,
               "extra icae-encoder flags, space-separated, e.g. \"--max_batch_segments 1\"");
  ParseFlagsOrExit(flags, argc, argv);
  std::vector<int> levels;
  if (absl::Status s = ParseIntList(o.concurrency, "--concurrency", &levels); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  if (o.rounds < 1 || o.min_requests < 1 || o.span_tokens < 1) {
    std::fprintf(stderr, "--rounds, --min_requests and --span_tokens must be >= 1\n");
    return 2;
  }
  if (o.bin_dir.empty()) o.bin_dir = SelfDir();
  if (o.work_dir.empty()) {
    char tmpl[] = "/tmp/icae-bench-encoder-XXXXXX";
    o.work_dir = ::mkdtemp(tmpl);
  }
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "icae-bench-encoder: %s\n", s.ToString().c_str());
    return 1;
  };

  // Hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000: ~134M parameters.
  const ModelConfig config = RandomLlamaConfig(768, 12, 12, 2048, 32000, 2048);
  constexpr int kMemSize = 128;
  std::printf(
      "# model: random Llama hidden %d, %d layers, vocab %d (%.0fM params), adapter "
      "r %d, mem_size %d, rate 4; %s, %d threads\n",
      config.hidden_size, config.num_layers, config.vocab_size, config.ParameterCount() / 1e6,
      o.lora_r, kMemSize, o.dtype.c_str(), o.threads);
  absl::Time t = absl::Now();
  RandomIcaePaths paths = RandomIcaePathsIn(o.work_dir);
  if (::access(paths.adapter.c_str(), R_OK) == 0) {
    std::printf("# reusing the model in %s\n", o.work_dir.c_str());
  } else {
    if (absl::Status s = WriteRandomIcaeModel(o.work_dir, config, kMemSize, o.lora_r, 1234, &paths);
        !s.ok()) {
      return fail(s);
    }
    std::printf("# wrote %s in %.1f s\n", o.work_dir.c_str(),
                absl::ToDoubleSeconds(absl::Now() - t));
  }
  std::fflush(stdout);

  ConfigureThreads(o.threads);
  std::mt19937 rng(42);
  RuntimeOptions runtime_options;
  runtime_options.dtype = o.dtype;
  auto runtime = ResolveRuntime(runtime_options);
  if (!runtime.ok()) return fail(runtime.status());
  auto compressor = Compressor::Load(paths.model_dir, paths.adapter, *runtime);
  if (!compressor.ok()) return fail(compressor.status());
  // The same work as the server's: the span's slots, converted to the wire dtype, as bytes.
  auto compress_in_process = [&](const std::vector<int>& ids) -> absl::StatusOr<double> {
    const absl::Time t0 = absl::Now();
    auto slots = (*compressor)->CompressSpan(ids);
    if (!slots.ok()) return slots.status();
    at::Tensor cpu = slots->to(at::kCPU, runtime->dtype).contiguous();
    std::string bytes(static_cast<const char*>(cpu.data_ptr()), cpu.nbytes());
    return absl::ToDoubleSeconds(absl::Now() - t0);
  };

  std::vector<std::string> server_args = {"--model",          paths.model_dir,
                                          "--adapter",        paths.adapter,
                                          "--listen",         "127.0.0.1:0",
                                          "--metrics_listen", "127.0.0.1:0",
                                          "--threads",        std::to_string(o.threads),
                                          "--dtype",          o.dtype};
  for (absl::string_view arg : absl::StrSplit(o.server_flags, ' ', absl::SkipEmpty())) {
    server_args.emplace_back(arg);
  }
  auto server =
      ChildServer::Start(o.bin_dir + "/icae-encoder", server_args, o.work_dir + "/server.log");
  if (!server.ok()) return fail(server.status());
  ClientOptions client_options;
  client_options.addresses = {(*server)->address()};
  client_options.timeout = absl::Minutes(30);
  auto client = EncoderClient::Create(client_options);
  if (!client.ok()) return fail(client.status());
  for (int i = 0; i < 120; ++i) {  // wait until loaded
    if (client->GetInfo(absl::Seconds(5)).ok()) break;
    absl::SleepFor(absl::Milliseconds(500));
  }

  // Concurrency 1 against in-process, alternating span by span so that both see the same
  // machine (other load on a shared host drifts over minutes). One warm-up of each first.
  std::vector<double> in_process, over_grpc;
  for (int i = 0; i <= o.min_requests; ++i) {
    auto local = compress_in_process(RandomSpan(o.span_tokens, config.vocab_size, rng));
    if (!local.ok()) return fail(local.status());
    const v1::CompressRequest request =
        SpanRequest(RandomSpan(o.span_tokens, config.vocab_size, rng), /*bypass_cache=*/true);
    const absl::Time t0 = absl::Now();
    auto remote = client->Compress(request);
    if (!remote.ok()) return fail(remote.status());
    if (i == 0) continue;
    in_process.push_back(*local);
    over_grpc.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
  }
  // In-process batch sweep: one model call on `b` segments at a time (what the server's batcher
  // builds), no gRPC: shows what batching itself buys on this machine.
  std::vector<int> sweep;
  if (!o.sweep_batches.empty()) {
    if (absl::Status s = ParseIntList(o.sweep_batches, "--sweep_batches", &sweep); !s.ok()) {
      return fail(s);
    }
  }
  std::vector<std::pair<int, double>> sweep_results;  // batch, tokens/s
  for (int b : sweep) {
    std::vector<std::vector<int>> segments;
    for (int i = 0; i < b; ++i)
      segments.push_back(RandomSpan(o.span_tokens, config.vocab_size, rng));
    std::vector<double> seconds;
    for (int rep = 0; rep < 3; ++rep) {
      const absl::Time t0 = absl::Now();
      auto slots = (*compressor)->CompressSegments(segments);
      if (!slots.ok()) return fail(slots.status());
      seconds.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
    }
    sweep_results.emplace_back(b, b * o.span_tokens / Quantile(seconds, 0.5));
    std::fprintf(stderr, "in-process batch %d: %.0f tokens/s\n", b, sweep_results.back().second);
  }
  compressor->reset();  // free the in-process model before the concurrency runs

  std::printf(
      "\n| concurrency | requests | tokens/s | p50 latency (ms) | p99 latency (ms) | "
      "mean batch (segments) | server page faults / request |\n|---|---|---|---|---|---|---|\n");
  const double in_process_p50 = Quantile(in_process, 0.5);
  std::printf("| in-process | %zu | %.0f | %.1f | %.1f | 1 | |\n", in_process.size(),
              o.span_tokens / in_process_p50, 1e3 * in_process_p50,
              1e3 * Quantile(in_process, 0.99));
  const double grpc_p50 = Quantile(over_grpc, 0.5);
  std::printf("| 1 (alternating with in-process) | %zu | %.0f | %.1f | %.1f | 1 | |\n",
              over_grpc.size(), o.span_tokens / grpc_p50, 1e3 * grpc_p50,
              1e3 * Quantile(over_grpc, 0.99));
  // The levels run in rounds (each round runs every level once, with its share of the requests),
  // so that load from other processes on a shared host falls on all levels alike.
  std::vector<Level> results(levels.size());
  for (int round = 0; round < o.rounds; ++round) {
    for (size_t l = 0; l < levels.size(); ++l) {
      const int c = levels[l];
      const int count = std::max(o.min_requests, 2 * c) / o.rounds;
      auto level = RunLevel(*client, **server, c, std::max(count, 1), o.span_tokens,
                            config.vocab_size, 1000 * round + c);
      if (!level.ok()) return fail(level.status());
      results[l].concurrency = c;
      results[l].span_tokens = o.span_tokens;
      results[l].Add(*level);
      std::fprintf(stderr, "round %d, concurrency %d: %.0f tokens/s\n", round, c,
                   level->tokens_per_second());
    }
  }
  for (const Level& level : results) {
    std::printf("| %d | %d | %.0f | %.1f | %.1f | %.2f | %.0f |\n", level.concurrency,
                level.requests, level.tokens_per_second(), 1e3 * Quantile(level.latencies, 0.5),
                1e3 * Quantile(level.latencies, 0.99), level.mean_batch(),
                static_cast<double>(level.minor_faults) / level.requests);
  }
  std::fflush(stdout);

  // Cache: one miss, then hits of the same span.
  const std::vector<int> cached = RandomSpan(o.span_tokens, config.vocab_size, rng);
  std::vector<double> hits;
  double miss = 0;
  for (int i = 0; i <= o.cache_hits; ++i) {
    const absl::Time t0 = absl::Now();
    auto r = client->Compress(SpanRequest(cached, false));
    if (!r.ok()) return fail(r.status());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    if (i == 0) {
      miss = seconds;
    } else {
      if (!r->spans(0).usage().cache_hit()) return fail(absl::InternalError("expected a hit"));
      hits.push_back(seconds);
    }
  }
  std::printf("| cache hit | %zu | %.0f | %.2f | %.2f | 0 | |\n", hits.size(),
              o.span_tokens / Quantile(hits, 0.5), 1e3 * Quantile(hits, 0.5),
              1e3 * Quantile(hits, 0.99));

  // Ratios against the targets, from this run's numbers only.
  const Level* c1 = nullptr;
  const Level* c16 = nullptr;
  for (const Level& l : results) {
    if (l.concurrency == 1) c1 = &l;
    if (l.concurrency == 16) c16 = &l;
  }
  std::printf("\n| target | measured | met |\n|---|---|---|\n");
  if (c1 != nullptr && c16 != nullptr) {
    const double ratio = c16->tokens_per_second() / c1->tokens_per_second();
    std::printf("| throughput c16 / c1 >= 2.0 | %.2f | %s |\n", ratio, ratio >= 2 ? "yes" : "no");
  }
  const double overhead = (grpc_p50 - in_process_p50) / in_process_p50;
  std::printf(
      "| gRPC + codec overhead at c1 <= 5%% of in-process | %+.1f%% (p50 %.1f vs %.1f ms) "
      "| %s |\n",
      100 * overhead, 1e3 * grpc_p50, 1e3 * in_process_p50, overhead <= 0.05 ? "yes" : "no");
  const double hit_ratio = Quantile(hits, 0.5) / grpc_p50;
  std::printf(
      "| cache hit p50 <= 1%% of a miss | %.2f%% (p50 %.2f vs %.1f ms; this span's own "
      "miss %.1f ms) | %s |\n",
      100 * hit_ratio, 1e3 * Quantile(hits, 0.5), 1e3 * grpc_p50, 1e3 * miss,
      hit_ratio <= 0.01 ? "yes" : "no");
  if (!sweep_results.empty()) {
    std::printf("\n| in-process batch (segments) | tokens/s (median of 3) |\n|---|---|\n");
    for (const auto& [b, tps] : sweep_results) std::printf("| %d | %.0f |\n", b, tps);
  }
  server->reset();
  if (!o.keep) std::system(absl::StrCat("rm -rf '", o.work_dir, "'").c_str());
  return 0;
}

}  // namespace
}  // namespace icae::bench

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  return icae::bench::Run(argc, argv);
}
