#include "common/model/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace icae {

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || temperature > 100.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.temperature ", temperature, " must be in [0, 100]"));
  }
  if (top_k < 0) return absl::InvalidArgumentError(absl::StrCat("sampling.top_k ", top_k, " < 0"));
  if (!(top_p >= 0.0f && top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.top_p ", top_p, " must be in [0, 1]"));
  }
  return absl::OkStatus();
}

int Argmax(const float* logits, int vocab) {
  int best = 0;
  for (int i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

int Sampler::Sample(const float* logits, int vocab) {
  if (params_.temperature <= 0.0f) return Argmax(logits, vocab);
  // Candidates sorted by logit (descending; ties by id), cut by top-k.
  scratch_.resize(vocab);
  for (int i = 0; i < vocab; ++i) scratch_[i] = {logits[i], i};
  auto by_logit = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  size_t keep = scratch_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = params_.top_k;
    std::partial_sort(scratch_.begin(), scratch_.begin() + keep, scratch_.end(), by_logit);
  } else {
    std::sort(scratch_.begin(), scratch_.end(), by_logit);
  }
  // Softmax over the kept candidates at the temperature, in double for stability.
  const double max_logit = scratch_[0].first;
  std::vector<double> probs(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((scratch_[i].first - max_logit) / params_.temperature);
    total += probs[i];
  }
  // Nucleus: the smallest prefix whose probability reaches top_p.
  if (params_.top_p > 0.0f && params_.top_p < 1.0f) {
    double cumulative = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      cumulative += probs[i] / total;
      if (cumulative >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += probs[i];
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  double draw = uniform(rng_);
  for (size_t i = 0; i < keep; ++i) {
    draw -= probs[i];
    if (draw < 0) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

}  // namespace icae
