// Next-token selection from one row of logits: greedy (temperature 0) or temperature / top-k /
// top-p sampling with the request's own seeded generator (same seed, same build -> same tokens).
// Plain C++ over a float array; no LibTorch. Not thread-safe (one per sequence).
#ifndef ICAE_COMMON_MODEL_SAMPLER_H_
#define ICAE_COMMON_MODEL_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/status.h"

namespace icae {

struct SamplingParams {
  float temperature = 0.0f;      // 0 = greedy.
  int top_k = 0;                 // 0 = no limit.
  float top_p = 1.0f;            // 1 (or 0) = no limit.
  std::optional<uint64_t> seed;  // Unset: a random seed.

  absl::Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // The chosen id in [0, vocab). Greedy returns the first index of the maximum (as argmax).
  int Sample(const float* logits, int vocab);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> scratch_;
  std::vector<double> weights_;  // exp((logit - max) / T) per id, computed once per Sample.
};

// Index of the first maximum.
int Argmax(const float* logits, int vocab);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_SAMPLER_H_
