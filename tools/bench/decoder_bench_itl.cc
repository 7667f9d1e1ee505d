// icae-bench-decoder section (e): inter-token latency of running streams while a long context
// arrives (decoder_bench_itl.h).
#include "tools/bench/decoder_bench_itl.h"

#include <algorithm>
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
namespace {

constexpr int kStreams = 8;
// Every stream decodes steadily (its own prefill long past) before the long context arrives.
constexpr int kSteadyTokens = 24;

// When each stream received each token (seconds from the streams' start), and the long
// request's arrival and first token (both 0 in a control run).
struct StreamRun {
  std::vector<std::vector<double>> times;
  double arrival = 0, first_token = 0;
};

// One decoder, kStreams streams. With `arrive`, the long request is sent once every stream has
// kSteadyTokens tokens; otherwise (the control) the run lasts until stream i has passed token
// until[i].
absl::StatusOr<StreamRun> RunStreams(const std::string& bin_dir, const RandomIcaePaths& paths,
                                     const std::string& threads, int chunk, int mixed_rows,
                                     const std::string& log, const TextRequestFn& text_request,
                                     bool arrive, const std::vector<size_t>& until) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<ChildServer> process,
      ChildServer::Start(
          bin_dir + "/icae-decoder",
          {"--model", paths.model_dir, "--adapter", paths.adapter, "--listen", "127.0.0.1:0",
           "--metrics_listen", "127.0.0.1:0", "--threads", threads, "--max_running", "16",
           "--prefill_chunk_tokens", absl::StrCat(chunk), "--mixed_step_rows",
           absl::StrCat(mixed_rows), "--max_new_tokens", "2000"},
          log));
  ClientOptions options;
  options.max_attempts = 1;
  options.timeout = absl::Minutes(10);
  options.addresses = {process->address()};
  ASSIGN_OR_RETURN(std::shared_ptr<const Connection> connection, Connection::Create(options));
  RETURN_IF_ERROR(WaitForServing(*connection, "icae.v1.Decoder", absl::Minutes(2)));
  DecoderClient decoder(connection);
  RETURN_IF_ERROR(decoder.Generate(text_request(64, 4)).status());  // Warm-up.
  StreamRun run;
  run.times.resize(kStreams);
  std::atomic<bool> stop{false};
  std::atomic<int> stream_errors{0};
  std::vector<std::atomic<size_t>> counts(kStreams);  // Chunks each stream has received.
  const absl::Time origin = absl::Now();
  auto since = [&] { return absl::ToDoubleSeconds(absl::Now() - origin); };
  std::vector<v1::GenerateRequest> stream_requests;
  for (int i = 0; i < kStreams; ++i) stream_requests.push_back(text_request(64, 2000));
  std::vector<std::thread> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.emplace_back([&, i] {
      absl::Status status =
          decoder.GenerateStream(stream_requests[i], [&](const v1::GenerateChunk&) {
            run.times[i].push_back(since());
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
  auto all_past = [&](auto&& index_of) {
    for (int i = 0; i < kStreams; ++i) {
      if (counts[i].load() <= index_of(i)) return false;
    }
    return true;
  };
  const absl::Time give_up = absl::Now() + absl::Minutes(5);
  while (!all_past([](int) { return size_t{kSteadyTokens}; }) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::Status long_status;
  if (arrive) {
    run.arrival = since();
    long_status = decoder.Generate(text_request(2048, 1)).status();
    run.first_token = since();
    absl::SleepFor(absl::Milliseconds(200));
  } else {
    while (!all_past([&](int i) { return until[i]; }) && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  stop = true;
  for (std::thread& t : streams) t.join();
  RETURN_IF_ERROR(long_status);
  if (stream_errors.load() > 0) {
    return absl::InternalError(absl::StrCat(stream_errors.load(), " streams failed"));
  }
  return run;
}

}  // namespace

// (e) A decoder with --prefill_chunk_tokens `chunk` and --mixed_step_rows `mixed_rows`: the
// arrival run, then the control run (decoder_bench_itl.h).
absl::StatusOr<ItlResult> MeasureItl(const std::string& bin_dir, const RandomIcaePaths& paths,
                                     const std::string& threads, int chunk, int mixed_rows,
                                     const std::string& work_dir,
                                     const TextRequestFn& text_request) {
  const std::string log = absl::StrCat(work_dir, "/decoder-itl-", chunk, "-", mixed_rows);
  ASSIGN_OR_RETURN(StreamRun run, RunStreams(bin_dir, paths, threads, chunk, mixed_rows,
                                             log + ".log", text_request, true, {}));
  ItlResult result;
  result.ttft = run.first_token - run.arrival;
  // Gap k of a stream: between its tokens k - 1 and k. Per stream, the gaps that overlap the
  // long request's prefill (arrival to first token) form one range of k.
  std::vector<double> gaps, steady;
  std::vector<size_t> first(kStreams, 0), last(kStreams, 0);
  for (int i = 0; i < kStreams; ++i) {
    const std::vector<double>& times = run.times[i];
    for (size_t k = 1; k < times.size(); ++k) {
      const double gap = times[k] - times[k - 1];
      if (times[k] >= run.arrival && times[k - 1] <= run.first_token) {
        gaps.push_back(gap);
        if (first[i] == 0) first[i] = k;
        last[i] = k;
      }
      if (times[k] < run.arrival && k > kSteadyTokens / 2) steady.push_back(gap);
    }
  }
  if (gaps.empty() || steady.empty()) {
    size_t tokens = 0;
    for (const std::vector<double>& times : run.times) tokens += times.size();
    return absl::InternalError(absl::StrCat("no stream gaps measured (", tokens,
                                            " stream tokens, arrival at ", run.arrival, " s)"));
  }
  ASSIGN_OR_RETURN(StreamRun control, RunStreams(bin_dir, paths, threads, chunk, mixed_rows,
                                                 log + "-control.log", text_request, false, last));
  std::vector<double> control_gaps;
  for (int i = 0; i < kStreams; ++i) {
    const std::vector<double>& times = control.times[i];
    for (size_t k = std::max<size_t>(first[i], 1); k <= last[i] && k < times.size(); ++k) {
      control_gaps.push_back(times[k] - times[k - 1]);
    }
  }
  if (control_gaps.empty()) return absl::InternalError("the control run measured no gaps");
  result.p50 = Quantile(gaps, 0.5);
  result.p99 = Quantile(gaps, 0.99);
  result.max = Quantile(gaps, 1.0);
  result.steady_p50 = Quantile(steady, 0.5);
  result.control_p50 = Quantile(control_gaps, 0.5);
  result.control_p99 = Quantile(control_gaps, 0.99);
  result.gaps = gaps.size();
  return result;
}

}  // namespace icae::bench
