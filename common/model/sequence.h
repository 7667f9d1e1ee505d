// The decoding state of one request: KV cache, sampler, generated ids, stop conditions and
// incremental detokenization for streaming. Owned by the decode loop that drives it (the decoder
// engine's scheduler, in the service or in-process for offline callers). Not thread-safe.
#ifndef ICAE_COMMON_MODEL_SEQUENCE_H_
#define ICAE_COMMON_MODEL_SEQUENCE_H_

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/io/incremental_decoder.h"
#include "common/io/tokenizer.h"
#include "common/model/generation_params.h"
#include "common/model/kv_cache.h"

namespace icae {

class Sequence {
 public:
  // `tokenizer` may be null (ids only; stop strings then must be empty). `eos_id` < 0: none.
  Sequence(KVCache cache, GenerationParams params, const Tokenizer* tokenizer, int eos_id,
           int vocab_size);

  KVCache& cache() { return cache_; }
  const KVCache& cache() const { return cache_; }

  // Picks the next token from the last position's logits [vocab] (float32, any device) and
  // updates the finish state. Returns the chosen id (an EOS is not appended to ids()).
  int Accept(const at::Tensor& logits);
  // Same over a CPU float array of at least vocab_size entries.
  int Accept(const float* logits);

  bool finished() const { return reason_ != FinishReason::kNone; }
  FinishReason finish_reason() const { return reason_; }
  void Cancel() { reason_ = FinishReason::kCancelled; }
  // The id to feed next (the last one accepted).
  int last_token() const { return last_token_; }
  const std::vector<int>& ids() const { return ids_; }

  // Text generated so far that can be shown: whole UTF-8 characters, with any stop string (and a
  // tail that could still become one) held back until finished. Empty without a tokenizer.
  std::string TakeNewText();
  // The final text (stop string removed).
  const std::string& text() const { return text_; }

 private:
  void UpdateText();

  KVCache cache_;
  GenerationParams params_;
  const Tokenizer* tokenizer_;
  int eos_id_;
  int vocab_size_;
  Sampler sampler_;
  std::vector<int> ids_;
  int last_token_ = -1;
  FinishReason reason_ = FinishReason::kNone;
  std::optional<IncrementalDecoder> detokenizer_;  // With a tokenizer: ids_ to text, O(1) a token.
  std::string text_;    // Decoded ids_ (cut at a stop string once one appears).
  size_t emitted_ = 0;  // Bytes of text_ returned by TakeNewText.
};

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_SEQUENCE_H_
