#include "common/model/generate.h"

#include <vector>

namespace icae {

at::Tensor DecodeLogits(const Transformer& transformer, absl::Span<Sequence* const> sequences,
                        const Transformer::StepChunk* chunk, at::Tensor* chunk_hidden,
                        bool chunk_last_logits) {
  std::vector<int64_t> tokens;
  std::vector<KVCache*> caches;
  tokens.reserve(sequences.size());
  caches.reserve(sequences.size());
  for (Sequence* seq : sequences) {
    tokens.push_back(seq->last_token());
    caches.push_back(&seq->cache());
  }
  at::Tensor embeds = transformer.Embed(at::tensor(tokens, at::TensorOptions().dtype(at::kLong)));
  at::Tensor hidden = chunk != nullptr
                          ? transformer.DecodeStep(embeds, caches, *chunk, chunk_hidden)
                          : transformer.DecodeStep(embeds, caches);
  if (chunk != nullptr && chunk_last_logits) {
    hidden = at::cat({hidden, chunk_hidden->narrow(0, -1, 1)});
  }
  return transformer.Logits(hidden)
      .to(at::kCPU, at::kFloat)
      .contiguous();  // [batch, vocab]
}

}  // namespace icae
