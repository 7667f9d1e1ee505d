// The two kinds of memory slots, a property of the adapter that makes them (adapter_config.json
// "slot_kind"). Kept free of LibTorch so that the services' wire code can name it.
//   kEmbedding: the final-normed hidden state of each memory token, read by the decoder as an
//               input embedding (ICAE). Wire shape [num_slots, hidden].
//   kKv:        the keys (after RoPE, at the encoder's positions) and values of every layer at
//               each memory token, read by the decoder as a KV-cache prefix (500xCompressor).
//               Wire shape [layers, 2, kv_heads, num_slots, head_dim].
#ifndef ICAE_COMMON_BASE_SLOT_KIND_H_
#define ICAE_COMMON_BASE_SLOT_KIND_H_

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace icae {

enum class SlotKind { kEmbedding, kKv };

// "embedding" / "kv", as adapter_config.json and the CLI spell them.
inline absl::string_view SlotKindName(SlotKind kind) {
  return kind == SlotKind::kKv ? "kv" : "embedding";
}

inline absl::StatusOr<SlotKind> ParseSlotKind(absl::string_view name) {
  if (name == "embedding") return SlotKind::kEmbedding;
  if (name == "kv") return SlotKind::kKv;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown slot kind '", name, "' (embedding or kv)"));
}

}  // namespace icae

#endif  // ICAE_COMMON_BASE_SLOT_KIND_H_
