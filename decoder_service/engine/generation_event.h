// What the engine hands back for a request: one event per decoded step (new ids and the text
// that became showable) and exactly one final event. No LibTorch, no gRPC.
#ifndef ICAE_DECODER_SERVICE_ENGINE_GENERATION_EVENT_H_
#define ICAE_DECODER_SERVICE_ENGINE_GENERATION_EVENT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model/generation_params.h"

namespace icae::decoder {

struct GenerationUsage {
  int slot_tokens = 0;                     // Slot positions prefilled.
  int prompt_tokens = 0;                   // Text context + template + prompt positions prefilled.
  int generated_tokens = 0;                // Ids generated (EOS excluded).
  int uncompressed_context_tokens = 0;     // Sum of the slots' source_tokens + text context tokens.
  int64_t kv_cache_bytes = 0;              // Bytes the request's own KV cache held.
  int cached_positions = 0;                // Context positions whose KV was reused (a prefix hit).
  double queue_seconds = 0;                // Arrival to admission.
  double time_to_first_token_seconds = 0;  // Admission to the first token.
  double total_seconds = 0;                // Arrival to the final event.
};

struct GenerationEvent {
  std::vector<int> token_ids;  // Ids generated since the previous event (EOS excluded).
  std::string text;            // Text that became showable since the previous event.
  // The last event of the request. Its status is OK when generation ended by itself
  // (finish_reason EOS, LENGTH or STOP), else why it was cut: CANCELLED, DEADLINE_EXCEEDED,
  // UNAVAILABLE (shutdown) or INTERNAL; usage is filled either way.
  bool final = false;
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status status;
  GenerationUsage usage;
  // Only for a LocalInput with keep_step_logits: the float32 logits [vocab] of every step since
  // the previous event (the step that picked EOS included), in order.
  std::vector<std::vector<float>> step_logits;
};

// Receives a request's events in order, on the engine's scheduler thread. Must return quickly
// and never block (buffer and hand off); may call Engine::Cancel. After the final event it is
// never called again and is destroyed.
using GenerationSink = std::function<void(GenerationEvent event)>;

}  // namespace icae::decoder

#endif  // ICAE_DECODER_SERVICE_ENGINE_GENERATION_EVENT_H_
