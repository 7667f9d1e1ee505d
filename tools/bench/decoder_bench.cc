// icae-bench-decoder: the decoder service against its own baselines, same run, real binaries
// (icae-encoder and icae-decoder over loopback) on a random ~134M Llama (hidden 768, 12 layers,
// vocab 32000) with a random ICAE adapter (mem_size 128, rate 4):
//   (a) answer latency for N contexts of 512 and of 2048 tokens generating G tokens each, all N
//       concurrent: full text context (raw template, token ids) vs 4x slots, end to end
//       (Compress of the N spans + generation), with the slots cached (generation only, the
//       decoder prefilling them: skip_prefix_cache) and a second question over the same slots
//       (the decoder reusing their KV: slot-prefix reuse);
//   (b) total generated tokens/s at concurrency 1, 4 and 16 (slots of one 512-token document +
//       a 16-token prompt each);
//   (c) KV-cache bytes per request, slots vs full text (from the servers' usage reports);
//   (d) time to first token of one question alone over new slots vs over slots the decoder has
//       already seen (a 2048-token document, 512 slots);
//   (e) inter-token latency of 8 running streams while a 2048-token text context arrives, with
//       each context in one piece (--prefill_chunk_tokens 0, the baseline) and with chunks.
// Output lengths are fixed with ignore_eos. The model has no tokenizer, so contexts and prompts
// are random token ids (what a tokenizer would produce costs the same).
//
//   icae-bench-decoder [--contexts 8] [--gen_tokens 128] [--threads 2] [--lengths 512,2048]
//                      [--concurrency 1,4,16] [--throughput_requests 2] [--throughput_tokens 64]
//                      [--itl_chunks 0,512,64] [--itl_mixed_rows 0,16] [--itl_rounds 1]
//                      [--sections abcde] [--json OUT]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/base/flags.h"
#include "common/base/process_setup.h"
#include "common/base/status_macros.h"
#include "common/client/decoder_client.h"
#include "common/client/encoder_client.h"
#include "common/client/health_client.h"
#include "common/io/mapped_file.h"
#include "nlohmann/json.hpp"
#include "tools/bench/bench_util.h"
#include "tools/bench/decoder_bench_itl.h"
#include "tools/bench/random_icae_model.h"

namespace icae::bench {
namespace {

std::vector<int> RandomIds(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int> dist(3, 31999);
  std::vector<int> ids(n);
  for (int& id : ids) id = dist(rng);
  return ids;
}

struct Batch {
  double seconds = 0;             // wall time of the whole batch
  double mean_ttft = 0;           // mean admission-to-first-token (server side)
  int64_t cached_positions = 0;   // context positions reused, all requests
  int64_t generated = 0;          // tokens generated in all
  int64_t kv_bytes = 0;           // KV-cache bytes of one request (the first)
  int64_t context_positions = 0;  // slot + prompt positions of one request
};

// Runs `requests` on `clients` threads (each takes the next request until none is left).
absl::StatusOr<Batch> RunConcurrent(const DecoderClient& decoder,
                                    const std::vector<v1::GenerateRequest>& requests, int clients) {
  std::vector<absl::StatusOr<v1::GenerateResponse>> responses(requests.size(),
                                                              absl::UnknownError("not run"));
  std::atomic<size_t> next{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < requests.size(); i = next++) {
        responses[i] = decoder.Generate(requests[i], absl::Minutes(30));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Batch batch;
  batch.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (auto& response : responses) {
    if (!response.ok()) return response.status();
    batch.generated += response->usage().generated_tokens();
    batch.mean_ttft += response->usage().time_to_first_token_seconds() / responses.size();
    batch.cached_positions += response->usage().cached_positions();
  }
  batch.kv_bytes = responses[0]->usage().kv_cache_bytes();
  batch.context_positions =
      responses[0]->usage().slot_tokens() + responses[0]->usage().prompt_tokens();
  return batch;
}

v1::GenerateRequest BaseRequest(const std::vector<int>& prompt, int gen_tokens,
                                bool reuse_prefix = true) {
  v1::GenerateRequest request;
  request.set_skip_prefix_cache(!reuse_prefix);
  request.set_template_name("raw");
  for (int id : prompt) request.mutable_prompt_ids()->add_ids(id);
  request.set_max_new_tokens(gen_tokens);
  request.set_ignore_eos(true);
  return request;
}

absl::StatusOr<v1::CompressResponse> Compress(const EncoderClient& encoder,
                                              const std::vector<std::vector<int>>& docs) {
  v1::CompressRequest request;
  request.set_slot_dtype(v1::FLOAT32);
  request.set_bypass_cache(true);
  for (const auto& doc : docs) {
    request.add_spans()->mutable_token_ids()->mutable_ids()->Add(doc.begin(), doc.end());
  }
  return encoder.Compress(request, absl::Minutes(30));
}

int Main(int argc, char** argv) {
  int contexts = 8, gen_tokens = 128, threads = 2, throughput_requests = 2, throughput_tokens = 64;
  int itl_rounds = 1;
  std::string lengths_flag = "512,2048", concurrency_flag = "1,4,16", bin_dir, work_dir;
  std::string itl_chunks_flag = "0,512,64", itl_mixed_flag = "0,16", sections = "abcde";
  FlagSet flags("icae-bench-decoder [options]");
  flags.Int("contexts", &contexts, "(a) concurrent requests, one context each");
  flags.Int("gen_tokens", &gen_tokens, "(a) tokens generated per request");
  flags.String("lengths", &lengths_flag, "(a) context lengths, tokens");
  flags.String("concurrency", &concurrency_flag, "(b) concurrency levels");
  flags.Int("throughput_requests", &throughput_requests, "(b) requests per client");
  flags.Int("itl_rounds", &itl_rounds,
            "(e) rounds of every configuration, interleaved; medians printed after them");
  flags.Int("throughput_tokens", &throughput_tokens, "(b) tokens generated per request");
  flags.Int("threads", &threads, "--threads of each server");
  flags.String("itl_chunks", &itl_chunks_flag, "(e) --prefill_chunk_tokens values, 0 first");
  flags.String("itl_mixed_rows", &itl_mixed_flag,
               "(e) --mixed_step_rows values, each run with every chunk > 0 (0 = chunks as steps "
               "of their own)");
  flags.String("sections", &sections, "which of (a)..(e) to run ((c) needs (a))");
  flags.String("bin_dir", &bin_dir, "where icae-encoder and icae-decoder are (default: mine)");
  flags.String("work_dir", &work_dir, "scratch directory for the model (default: a temp dir)");
  std::string json_out;
  flags.String("json", &json_out, "also write every figure as JSON to this file");
  ParseFlagsOrExit(flags, argc, argv);
  if (itl_rounds < 1) {
    std::fprintf(stderr, "--itl_rounds %d must be >= 1\n", itl_rounds);
    return 2;
  }
  std::vector<int> lengths, levels;
  std::vector<int> itl_chunks, itl_mixed;
  if (!ParseIntList(lengths_flag, "--lengths", &lengths).ok() ||
      !ParseIntList(concurrency_flag, "--concurrency", &levels).ok() ||
      !ParseIntList(itl_chunks_flag, "--itl_chunks", &itl_chunks).ok() ||
      !ParseIntList(itl_mixed_flag, "--itl_mixed_rows", &itl_mixed).ok()) {
    std::fprintf(stderr, "bad --lengths, --concurrency, --itl_chunks or --itl_mixed_rows\n");
    return 2;
  }
  if (bin_dir.empty()) bin_dir = std::filesystem::canonical("/proc/self/exe").parent_path();
  bool own_dir = work_dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/icae_bench_decoder_XXXXXX";
    work_dir = ::mkdtemp(tmpl);
  }

  const ModelConfig config = RandomLlamaConfig(768, 12, 12, 2048, 32000, 4096);
  RandomIcaePaths paths;
  absl::Time t0 = absl::Now();
  if (absl::Status s = WriteRandomIcaeModel(work_dir, config, /*mem_size=*/128, /*lora_r=*/8,
                                            /*seed=*/1, &paths);
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf(
      "model: random Llama hidden 768, 12 layers, 12 heads, intermediate 2048, vocab "
      "32000 (%.1fM parameters), fp32; adapter mem_size 128, rate 4; written in %.1f s\n",
      config.ParameterCount() / 1e6, absl::ToDoubleSeconds(absl::Now() - t0));
  const std::string thread_flag = absl::StrCat(threads);
  auto decoder_process = ChildServer::Start(
      bin_dir + "/icae-decoder",
      {"--model", paths.model_dir, "--adapter", paths.adapter, "--listen", "127.0.0.1:0",
       "--metrics_listen", "127.0.0.1:0", "--threads", thread_flag, "--max_running", "16"},
      work_dir + "/decoder.log");
  if (!decoder_process.ok()) {
    std::fprintf(stderr, "%s\n", decoder_process.status().ToString().c_str());
    return 1;
  }
  auto encoder_process = ChildServer::Start(
      bin_dir + "/icae-encoder",
      {"--model", paths.model_dir, "--adapter", paths.adapter, "--listen", "127.0.0.1:0",
       "--metrics_listen", "127.0.0.1:0", "--threads", thread_flag},
      work_dir + "/encoder.log");
  if (!encoder_process.ok()) {
    std::fprintf(stderr, "%s\n", encoder_process.status().ToString().c_str());
    return 1;
  }
  ClientOptions options;
  options.max_attempts = 1;
  options.timeout = absl::Minutes(30);
  options.addresses = {(*decoder_process)->address()};
  auto decoder_conn = Connection::Create(options);
  options.addresses = {(*encoder_process)->address()};
  auto encoder_conn = Connection::Create(options);
  if (!decoder_conn.ok() || !encoder_conn.ok() ||
      !WaitForServing(**decoder_conn, "icae.v1.Decoder", absl::Minutes(2)).ok() ||
      !WaitForServing(**encoder_conn, "icae.v1.Encoder", absl::Minutes(2)).ok()) {
    std::fprintf(stderr, "servers did not come up; logs in %s\n", work_dir.c_str());
    return 1;
  }
  DecoderClient decoder(*decoder_conn);
  EncoderClient encoder(*encoder_conn);
  std::printf("servers: icae-decoder and icae-encoder, --threads %d each, loopback\n\n", threads);
  std::mt19937 rng(42);
  const std::vector<int> prompt = RandomIds(rng, 16);

  // Warm-up (first-call allocations, thread pools).
  {
    auto warm = Compress(encoder, {RandomIds(rng, 512)});
    if (!warm.ok()) return std::fprintf(stderr, "%s\n", warm.status().ToString().c_str()), 1;
    v1::GenerateRequest request = BaseRequest(prompt, 8);
    *request.add_context()->mutable_slots() = warm->spans(0).slots();
    if (!decoder.Generate(request).ok()) return 1;
  }

  struct KvRow {
    int length;
    int64_t full_bytes, slot_bytes, full_positions, slot_positions;
  };
  std::vector<KvRow> kv_rows;
  nlohmann::json report = {{"threads", threads},
                           {"contexts", contexts},
                           {"gen_tokens", gen_tokens},
                           {"latency", nlohmann::json::array()},
                           {"throughput", nlohmann::json::array()},
                           {"ttft", nlohmann::json::array()},
                           {"itl", nlohmann::json::array()}};
  auto section = [&](char c) { return sections.find(c) != std::string::npos; };
  if (section('a')) {
    std::printf(
        "(a) answer latency: %d concurrent requests, each one context + a 16-token prompt, "
        "%d generated tokens each\n",
        contexts, gen_tokens);
    std::printf("%-8s %11s %11s %11s %11s %10s %10s %10s %10s %10s %10s\n", "context",
                "full text s", "compress s", "slots gen s", "2nd q s", "e2e ratio", "cached",
                "2nd q", "ttft full", "ttft slots", "ttft 2nd q");
    for (int length : lengths) {
      std::vector<std::vector<int>> docs;
      for (int i = 0; i < contexts; ++i) docs.push_back(RandomIds(rng, length));
      std::vector<v1::GenerateRequest> full;
      for (const auto& doc : docs) {
        // The baseline prefills its text every time (no reuse of text prefixes either).
        v1::GenerateRequest request = BaseRequest(prompt, gen_tokens, /*reuse_prefix=*/false);
        request.add_context()->mutable_token_ids()->mutable_ids()->Add(doc.begin(), doc.end());
        full.push_back(std::move(request));
      }
      auto full_batch = RunConcurrent(decoder, full, contexts);
      if (!full_batch.ok())
        return std::fprintf(stderr, "%s\n", full_batch.status().ToString().c_str()), 1;
      // End to end: compress the N documents (one call), then generate from their slots.
      const absl::Time e2e_start = absl::Now();
      auto compressed = Compress(encoder, docs);
      if (!compressed.ok())
        return std::fprintf(stderr, "%s\n", compressed.status().ToString().c_str()), 1;
      const double compress_seconds = absl::ToDoubleSeconds(absl::Now() - e2e_start);
      std::vector<v1::GenerateRequest> with_slots;
      for (const v1::CompressedSpan& span : compressed->spans()) {
        v1::GenerateRequest request = BaseRequest(prompt, gen_tokens);
        *request.add_context()->mutable_slots() = span.slots();
        with_slots.push_back(std::move(request));
      }
      auto slots_batch = RunConcurrent(decoder, with_slots, contexts);
      if (!slots_batch.ok())
        return std::fprintf(stderr, "%s\n", slots_batch.status().ToString().c_str()), 1;
      const double e2e_seconds = absl::ToDoubleSeconds(absl::Now() - e2e_start);
      // Slots cached: the same generation again, compression already done; the decoder prefills
      // the slots (as a decoder that has not seen them would).
      for (v1::GenerateRequest& request : with_slots) request.set_skip_prefix_cache(true);
      auto cached_batch = RunConcurrent(decoder, with_slots, contexts);
      if (!cached_batch.ok()) return 1;
      // A second question over the same slots: their KV is reused, only the question is prefilled.
      const std::vector<int> second_prompt = RandomIds(rng, 16);
      std::vector<v1::GenerateRequest> second;
      for (const v1::CompressedSpan& span : compressed->spans()) {
        v1::GenerateRequest request = BaseRequest(second_prompt, gen_tokens);
        *request.add_context()->mutable_slots() = span.slots();
        second.push_back(std::move(request));
      }
      auto second_batch = RunConcurrent(decoder, second, contexts);
      if (!second_batch.ok()) return 1;
      if (second_batch->cached_positions == 0) {
        std::fprintf(stderr, "the second question reused no KV: is --prefix_cache_bytes 0?\n");
        return 1;
      }
      std::printf("%dx%-6d %11.2f %11.2f %11.2f %11.2f %9.2fx %9.2fx %9.2fx %10.2f %10.2f %10.3f\n",
                  contexts, length, full_batch->seconds, compress_seconds, cached_batch->seconds,
                  second_batch->seconds, full_batch->seconds / e2e_seconds,
                  full_batch->seconds / cached_batch->seconds,
                  full_batch->seconds / second_batch->seconds, full_batch->mean_ttft,
                  cached_batch->mean_ttft, second_batch->mean_ttft);
      std::fflush(stdout);
      report["latency"].push_back({{"context", length},
                                   {"full_text_s", full_batch->seconds},
                                   {"compress_s", compress_seconds},
                                   {"compress_and_generate_s", e2e_seconds},
                                   {"cached_slots_s", cached_batch->seconds},
                                   {"second_question_s", second_batch->seconds},
                                   {"ttft_full_s", full_batch->mean_ttft},
                                   {"ttft_slots_s", cached_batch->mean_ttft},
                                   {"ttft_second_question_s", second_batch->mean_ttft}});
      kv_rows.push_back({length, full_batch->kv_bytes, cached_batch->kv_bytes,
                         full_batch->context_positions, cached_batch->context_positions});
    }
    std::printf(
        "  (e2e = compress + generate from slots, %s; paper, Llama-7b on GPU: 8x512 2.2x, "
        "8x2048 3.3x; cached 2.5-6.2x; target for the 2nd question at 8x2048: >= 6x, TTFT <= 1/10 "
        "of the slots' first)\n\n",
        "one Compress call of all contexts, cache bypassed");
  }

  if (section('b')) {
    std::printf(
        "(b) generation throughput: slots of one 512-token document + 16-token prompt, %d "
        "tokens per request, %d requests per client (the document's KV is reused after the first "
        "request)\n",
        throughput_tokens, throughput_requests);
    std::vector<int> doc = RandomIds(rng, 512);
    auto one = Compress(encoder, {doc});
    if (!one.ok()) return 1;
    double base_rate = 0;
    std::printf("%-12s %10s %12s %12s %10s\n", "concurrency", "requests", "tokens", "tokens/s",
                "vs c=1");
    for (int level : levels) {
      std::vector<v1::GenerateRequest> requests;
      for (int i = 0; i < level * throughput_requests; ++i) {
        v1::GenerateRequest request = BaseRequest(RandomIds(rng, 16), throughput_tokens);
        *request.add_context()->mutable_slots() = one->spans(0).slots();
        requests.push_back(std::move(request));
      }
      auto batch = RunConcurrent(decoder, requests, level);
      if (!batch.ok()) return std::fprintf(stderr, "%s\n", batch.status().ToString().c_str()), 1;
      const double rate = batch->generated / batch->seconds;
      if (base_rate == 0) base_rate = rate;
      report["throughput"].push_back(
          {{"concurrency", level}, {"tokens", batch->generated}, {"tokens_per_s", rate}});
      std::printf("%-12d %10zu %12lld %12.1f %9.2fx\n", level, requests.size(),
                  static_cast<long long>(batch->generated), rate, rate / base_rate);
      std::fflush(stdout);
    }
    std::printf("  (target: >= 4x at 16 vs 1)\n\n");
  }

  if (section('c') && section('a')) {
    std::printf("(c) KV cache per request (context + prompt + %d generated positions reserved)\n",
                gen_tokens);
    std::printf("%-8s %16s %16s %8s %22s\n", "context", "full text bytes", "slots bytes", "ratio",
                "context positions");
    for (const KvRow& row : kv_rows) {
      std::printf("%-8d %16lld %16lld %7.3f %10lld vs %-10lld\n", row.length,
                  static_cast<long long>(row.full_bytes), static_cast<long long>(row.slot_bytes),
                  static_cast<double>(row.slot_bytes) / row.full_bytes,
                  static_cast<long long>(row.slot_positions),
                  static_cast<long long>(row.full_positions));
    }
    std::printf("  (expect 1/4 for the context part: slot positions / text positions)\n\n");
  }

  // (d) One question at a time: TTFT over new slots, then a second question over the same ones.
  if (section('d')) {
    constexpr int kTtftDocs = 4;
    std::printf(
        "(d) time to first token, one request alone: %d documents of 2048 tokens (512 slots), "
        "a 16-token question each, then a second question over the same slots\n",
        kTtftDocs);
    std::printf("%-10s %14s %16s %10s\n", "document", "new slots s", "seen slots s", "ratio");
    std::vector<double> first_ttfts, second_ttfts;
    for (int i = 0; i < kTtftDocs; ++i) {
      auto compressed = Compress(encoder, {RandomIds(rng, 2048)});
      if (!compressed.ok()) return 1;
      double ttft[2];
      for (int q = 0; q < 2; ++q) {
        v1::GenerateRequest request = BaseRequest(RandomIds(rng, 16), 4);
        *request.add_context()->mutable_slots() = compressed->spans(0).slots();
        auto response = decoder.Generate(request, absl::Minutes(30));
        if (!response.ok()) return 1;
        ttft[q] = response->usage().time_to_first_token_seconds();
      }
      first_ttfts.push_back(ttft[0]);
      second_ttfts.push_back(ttft[1]);
      std::printf("%-10d %14.4f %16.4f %9.1fx\n", i, ttft[0], ttft[1], ttft[0] / ttft[1]);
      report["ttft"].push_back({{"new_slots_s", ttft[0]}, {"seen_slots_s", ttft[1]}});
    }
    std::sort(first_ttfts.begin(), first_ttfts.end());
    std::sort(second_ttfts.begin(), second_ttfts.end());
    const double first_median = (first_ttfts[1] + first_ttfts[2]) / 2;
    const double second_median = (second_ttfts[1] + second_ttfts[2]) / 2;
    std::printf("%-10s %14.4f %16.4f %9.1fx   (target: seen <= 1/10 of new)\n\n", "median",
                first_median, second_median, first_median / second_median);
  }

  if (section('e')) {
    std::printf(
        "(e) inter-token latency of 8 running streams (64-token contexts) while a 2048-token "
        "text context arrives, by --prefill_chunk_tokens (0 = each context in one piece) and "
        "--mixed_step_rows (0 = chunks as steps of their own)\n");
    std::printf(
        "  during: the streams' gaps while it prefills; steady: their gaps before it; control: a\n"
        "  second run without the arrival, the same streams' gaps at the same token positions\n");
    std::printf("%-6s %6s %6s %9s %9s %9s %10s %10s %10s %9s %12s %13s\n", "chunk", "mixed",
                "gaps", "p50 ms", "p99 ms", "max ms", "steady p50", "ctrl p50", "ctrl p99",
                "TTFT s", "p99/ctrl p50", "p99/steady p50");
    auto text_request = [&](int context, int gen) {
      v1::GenerateRequest request = BaseRequest(RandomIds(rng, 16), gen, /*reuse_prefix=*/false);
      const std::vector<int> ids = RandomIds(rng, context);
      request.add_context()->mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
      return request;
    };
    // Every configuration once per round, rounds interleaved (the machine's noise drifts); the
    // medians over the rounds close the table.
    std::vector<std::pair<int, int>> configs;
    for (int chunk : itl_chunks) {
      // Without chunks nothing rides along: one configuration.
      for (int mixed : chunk == 0 ? std::vector<int>{0} : itl_mixed) {
        configs.push_back({chunk, mixed});
      }
    }
    std::vector<std::vector<double>> control_ratios(configs.size()), steady_ratios(configs.size());
    std::vector<std::vector<double>> ttfts(configs.size());
    for (int round = 0; round < itl_rounds; ++round) {
      for (size_t c = 0; c < configs.size(); ++c) {
        const auto [chunk, mixed] = configs[c];
        auto itl = MeasureItl(bin_dir, paths, thread_flag, chunk, mixed, work_dir, text_request);
        if (!itl.ok()) return std::fprintf(stderr, "%s\n", itl.status().ToString().c_str()), 1;
        std::printf(
            "%-6d %6d %6zu %9.1f %9.1f %9.1f %10.1f %10.1f %10.1f %9.2f %11.2fx %12.2fx\n",
            chunk, mixed, itl->gaps, itl->p50 * 1e3, itl->p99 * 1e3, itl->max * 1e3,
            itl->steady_p50 * 1e3, itl->control_p50 * 1e3, itl->control_p99 * 1e3, itl->ttft,
            itl->p99 / itl->control_p50, itl->p99 / itl->steady_p50);
        std::fflush(stdout);
        control_ratios[c].push_back(itl->p99 / itl->control_p50);
        steady_ratios[c].push_back(itl->p99 / itl->steady_p50);
        ttfts[c].push_back(itl->ttft);
        report["itl"].push_back({{"chunk", chunk},
                                 {"mixed_step_rows", mixed},
                                 {"round", round},
                                 {"p50_s", itl->p50},
                                 {"p99_s", itl->p99},
                                 {"max_s", itl->max},
                                 {"steady_p50_s", itl->steady_p50},
                                 {"control_p50_s", itl->control_p50},
                                 {"control_p99_s", itl->control_p99},
                                 {"long_ttft_s", itl->ttft}});
      }
    }
    if (itl_rounds > 1) {
      std::printf("medians over %d rounds:\n", itl_rounds);
      for (size_t c = 0; c < configs.size(); ++c) {
        std::printf("%-6d %6d   p99/ctrl p50 %.2fx  p99/steady p50 %.2fx  TTFT %.2f s\n",
                    configs[c].first, configs[c].second, Quantile(control_ratios[c], 0.5),
                    Quantile(steady_ratios[c], 0.5), Quantile(ttfts[c], 0.5));
      }
    }
    std::printf(
        "  (target: p99 during the arrival <= 2x the streams' median: the control's, at the same\n"
        "   positions; the steady median before the arrival is the stricter reading)\n");
  }
  if (!json_out.empty()) {
    if (absl::Status st = WriteStringToFile(json_out, report.dump(2) + "\n"); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  if (own_dir) std::filesystem::remove_all(work_dir);
  return 0;
}

}  // namespace
}  // namespace icae::bench

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  return icae::bench::Main(argc, argv);
}
