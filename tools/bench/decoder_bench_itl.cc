// icae-bench-decoder section (e): inter-token latency of running streams while a long context
// arrives (decoder_bench_itl.h).
#include "tools/bench/decoder_bench_itl.h"

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/client/decoder_client.h"
#include "common/client/health_client.h"
#include "tools/bench/bench_util.h"

namespace icae::bench {

// (e) A decoder with --prefill_chunk_tokens `chunk` and --mixed_step_rows `mixed_rows`: 8 streams generate; once each has 24 tokens a
// request with a 2048-token text context arrives (generating one token); the streams' token gaps
// that overlap its arrival-to-first-token window are the figures.
absl::StatusOr<ItlResult> MeasureItl(const std::string& bin_dir, const RandomIcaePaths& paths,
                                     const std::string& threads, int chunk, int mixed_rows,
                                     const std::string& work_dir,
                                     const TextRequestFn& text_request) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<ChildServer> process,
      ChildServer::Start(
          bin_dir + "/icae-decoder",
          {"--model", paths.model_dir, "--adapter", paths.adapter, "--listen", "127.0.0.1:0",
           "--metrics_listen", "127.0.0.1:0", "--threads", threads, "--max_running", "16",
           "--prefill_chunk_tokens", absl::StrCat(chunk), "--mixed_step_rows",
           absl::StrCat(mixed_rows), "--max_new_tokens", "2000"},
          absl::StrCat(work_dir, "/decoder-itl-", chunk, "-", mixed_rows, ".log")));
  ClientOptions options;
  options.max_attempts = 1;
  options.timeout = absl::Minutes(10);
  options.addresses = {process->address()};
  ASSIGN_OR_RETURN(std::shared_ptr<const Connection> connection, Connection::Create(options));
  RETURN_IF_ERROR(WaitForServing(*connection, "icae.v1.Decoder", absl::Minutes(2)));
  DecoderClient decoder(connection);
  RETURN_IF_ERROR(decoder.Generate(text_request(64, 4)).status());  // Warm-up.
  constexpr int kStreams = 8;
  std::vector<std::vector<double>> arrivals(kStreams);
  std::atomic<bool> stop{false};
  std::atomic<int> stream_errors{0};
  std::vector<std::atomic<int>> counts(kStreams);  // Chunks each stream has received.
  const absl::Time origin = absl::Now();
  auto since = [&] { return absl::ToDoubleSeconds(absl::Now() - origin); };
  std::vector<v1::GenerateRequest> stream_requests;
  for (int i = 0; i < kStreams; ++i) stream_requests.push_back(text_request(64, 2000));
  std::vector<std::thread> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.emplace_back([&, i] {
      absl::Status status =
          decoder.GenerateStream(stream_requests[i], [&](const v1::GenerateChunk&) {
            arrivals[i].push_back(since());
            ++counts[i];
            return !stop.load();
          });
      // Cancelled at the end (CANCELLED); anything else means the figures are wrong.
      if (!status.ok() && !absl::IsCancelled(status)) {
        std::fprintf(stderr, "stream %d: %s\n", i, status.ToString().c_str());
        ++stream_errors;
      }
    });
  }
  // Every stream decoding steadily (its own prefill long past) before the long context arrives.
  constexpr int kSteadyTokens = 24;
  const absl::Time give_up = absl::Now() + absl::Minutes(3);
  auto steady_now = [&] {
    for (const std::atomic<int>& c : counts) {
      if (c.load() < kSteadyTokens) return false;
    }
    return true;
  };
  while (!steady_now() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  const double arrival = since();
  absl::Status long_status = decoder.Generate(text_request(2048, 1)).status();
  const double first_token = since();
  absl::SleepFor(absl::Milliseconds(200));
  stop = true;
  for (std::thread& t : streams) t.join();
  RETURN_IF_ERROR(long_status);
  ItlResult result;
  result.ttft = first_token - arrival;
  std::vector<double> gaps, steady;
  for (const std::vector<double>& times : arrivals) {
    for (size_t k = 1; k < times.size(); ++k) {
      const double gap = times[k] - times[k - 1];
      // Every gap that overlaps the long request's prefill (arrival to its first token).
      if (times[k] >= arrival && times[k - 1] <= first_token) gaps.push_back(gap);
      if (times[k] < arrival && k > kSteadyTokens / 2) steady.push_back(gap);
    }
  }
  if (gaps.empty() || steady.empty()) {
    size_t tokens = 0;
    for (const std::vector<double>& times : arrivals) tokens += times.size();
    return absl::InternalError(absl::StrCat("no stream gaps measured (", tokens,
                                            " stream tokens, arrival at ", arrival, " s, ",
                                            stream_errors.load(), " streams failed)"));
  }
  result.p50 = Quantile(gaps, 0.5);
  result.p99 = Quantile(gaps, 0.99);
  result.max = Quantile(gaps, 1.0);
  result.steady_p50 = Quantile(steady, 0.5);
  result.gaps = gaps.size();
  return result;
}

}  // namespace icae::bench
