// Corpus BLEU (Papineni et al. 2002) over token ids: clipped n-gram precisions for n = 1..4
// summed over the whole corpus, their geometric mean with uniform weights, times the brevity
// penalty exp(1 - ref/hyp) when the hypotheses are shorter in total. No smoothing: a corpus
// without any matching 4-gram scores 0. Pure C++, thread-compatible.
#ifndef ICAE_TOOLS_CLI_EVAL_BLEU_H_
#define ICAE_TOOLS_CLI_EVAL_BLEU_H_

#include <vector>

namespace icae::cli {

// In [0, 1]; 1 when every hypothesis equals its reference (and references have >= 4 tokens).
// `hypotheses` and `references` have the same length (one reference per hypothesis).
double CorpusBleu(const std::vector<std::vector<int>>& hypotheses,
                  const std::vector<std::vector<int>>& references, int max_n = 4);

}  // namespace icae::cli

#endif  // ICAE_TOOLS_CLI_EVAL_BLEU_H_
