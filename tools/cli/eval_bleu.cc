#include "tools/cli/eval_bleu.h"

#include <cmath>
#include <map>

namespace icae::cli {

double CorpusBleu(const std::vector<std::vector<int>>& hypotheses,
                  const std::vector<std::vector<int>>& references, int max_n) {
  std::vector<double> matched(max_n, 0), total(max_n, 0);
  double hyp_len = 0, ref_len = 0;
  for (size_t s = 0; s < hypotheses.size() && s < references.size(); ++s) {
    const std::vector<int>& hyp = hypotheses[s];
    const std::vector<int>& ref = references[s];
    hyp_len += hyp.size();
    ref_len += ref.size();
    for (int n = 1; n <= max_n; ++n) {
      std::map<std::vector<int>, int> ref_counts;
      for (size_t i = 0; i + n <= ref.size(); ++i) {
        ++ref_counts[std::vector<int>(ref.begin() + i, ref.begin() + i + n)];
      }
      std::map<std::vector<int>, int> hyp_counts;
      for (size_t i = 0; i + n <= hyp.size(); ++i) {
        ++hyp_counts[std::vector<int>(hyp.begin() + i, hyp.begin() + i + n)];
      }
      for (const auto& [gram, count] : hyp_counts) {
        auto it = ref_counts.find(gram);
        if (it != ref_counts.end()) matched[n - 1] += std::min(count, it->second);
        total[n - 1] += count;
      }
    }
  }
  double log_sum = 0;
  for (int n = 0; n < max_n; ++n) {
    if (total[n] == 0 || matched[n] == 0) return 0.0;
    log_sum += std::log(matched[n] / total[n]);
  }
  const double brevity = hyp_len < ref_len ? std::exp(1.0 - ref_len / hyp_len) : 1.0;
  return brevity * std::exp(log_sum / max_n);
}

}  // namespace icae::cli
