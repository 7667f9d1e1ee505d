#include "decoder_service/engine/engine_options.h"

#include "absl/strings/str_cat.h"

namespace icae::decoder {

absl::Status EngineOptions::Validate(int model_max_positions) const {
  if (max_running < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max_running ", max_running, " must be >= 1"));
  }
  if (max_kv_tokens < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_kv_tokens ", max_kv_tokens, " must be >= 2"));
  }
  if (max_waiting < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max_waiting ", max_waiting, " must be >= 0"));
  }
  if (max_context_tokens < 0 || max_context_tokens == 1 ||
      max_context_tokens > model_max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_context_tokens ", max_context_tokens,
                     " must be in [2, the model's max_position_embeddings ", model_max_positions,
                     "] (0 = that)"));
  }
  if (max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_new_tokens ", max_new_tokens, " must be >= 1"));
  }
  if (prefill_chunk_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefill_chunk_tokens ", prefill_chunk_tokens, " must be >= 0"));
  }
  if (mixed_step_rows < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mixed_step_rows ", mixed_step_rows, " must be >= 0 (0 = off)"));
  }
  if (kv_block_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_block_tokens ", kv_block_tokens, " must be >= 1"));
  }
  if (prefix_cache_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefix_cache_bytes ", prefix_cache_bytes, " must be >= 0 (0 = off)"));
  }
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads ", threads, " must be >= 0"));
  }
  return absl::OkStatus();
}

}  // namespace icae::decoder
