// icae-bench-decoder section (e): a decoder with --prefill_chunk_tokens `chunk` (and
// --mixed_step_rows `mixed_rows`: chunks riding along the decode steps, or not) on the random
// model, 8 streams generating; once each has 24 tokens a request with a 2048-token text context
// arrives (generating one token). The figures: the streams' token gaps that overlap its
// arrival-to-first-token window, against two baselines: their steady gaps before it (same run),
// and the gaps at the same token positions of each stream in a second run without the arrival
// (the control: the streams' own median at that depth, since their steps slow as they grow).
#ifndef ICAE_TOOLS_BENCH_DECODER_BENCH_ITL_H_
#define ICAE_TOOLS_BENCH_DECODER_BENCH_ITL_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "icae/v1/decoder.pb.h"
#include "tools/bench/random_icae_model.h"

namespace icae::bench {

struct ItlResult {
  double p50 = 0, p99 = 0, max = 0;  // Running streams' gaps while the long context prefills.
  double steady_p50 = 0;             // Their gaps before it arrived.
  // The control run: the same streams' gaps at the same token positions, nothing arriving.
  double control_p50 = 0, control_p99 = 0;
  double ttft = 0;                   // The long request's arrival to its first token.
  size_t gaps = 0;
};

// A raw-template request with a `context`-token text context generating `gen` tokens.
using TextRequestFn = std::function<v1::GenerateRequest(int context, int gen)>;

absl::StatusOr<ItlResult> MeasureItl(const std::string& bin_dir, const RandomIcaePaths& paths,
                                     const std::string& threads, int chunk, int mixed_rows,
                                     const std::string& work_dir,
                                     const TextRequestFn& text_request);

}  // namespace icae::bench

#endif  // ICAE_TOOLS_BENCH_DECODER_BENCH_ITL_H_
