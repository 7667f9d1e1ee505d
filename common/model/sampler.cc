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
  const double temperature = params_.temperature;
  const bool top_k = params_.top_k > 0 && params_.top_k < vocab;
  const bool top_p = params_.top_p > 0.0f && params_.top_p < 1.0f;
  const double max_logit = logits[Argmax(logits, vocab)];
  // Each id's unnormalised probability, once: every later pass reads it.
  weights_.resize(vocab);
  double all = 0;
  for (int i = 0; i < vocab; ++i)
    all += (weights_[i] = std::exp((logits[i] - max_logit) / temperature));
  if (!top_k && !top_p) {
    // Plain temperature sampling needs no order.
    std::uniform_real_distribution<double> uniform(0.0, all);
    double draw = uniform(rng_);
    for (int i = 0; i < vocab; ++i) {
      draw -= weights_[i];
      if (draw < 0) return i;
    }
    return Argmax(logits, vocab);
  }
  // Candidates by logit (descending; ties by id). Only a prefix is ever ordered: the top k, or
  // for the nucleus alone a prefix grown until it holds top_p of the mass (partial selection,
  // not a sort of the whole vocabulary).
  scratch_.resize(vocab);
  for (int i = 0; i < vocab; ++i) scratch_[i] = {logits[i], i};
  auto by_logit = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  size_t keep = top_k ? static_cast<size_t>(params_.top_k) : scratch_.size();
  // The softmax denominator over the candidates at the temperature, in double: over the top k,
  // or over the whole vocabulary.
  double total = all;
  if (top_k) {
    std::partial_sort(scratch_.begin(), scratch_.begin() + keep, scratch_.end(), by_logit);
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += weights_[scratch_[i].second];
  }
  if (top_p) {
    // The smallest prefix whose probability reaches top_p.
    size_t sorted = top_k ? keep : 0;
    double cumulative = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      if (i == sorted) {
        const size_t grow = std::min(keep, std::max<size_t>(64, 4 * sorted));
        std::partial_sort(scratch_.begin() + sorted, scratch_.begin() + grow, scratch_.end(),
                          by_logit);
        sorted = grow;
      }
      cumulative += weights_[scratch_[i].second] / total;
      if (cumulative >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += weights_[scratch_[i].second];
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  double draw = uniform(rng_);
  for (size_t i = 0; i < keep; ++i) {
    draw -= weights_[scratch_[i].second];
    if (draw < 0) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

}  // namespace icae
