// Memory slots saved to disk: a safetensors file with one tensor `slots` ([num_slots, hidden], or
// for KV slots [layers, 2, kv_heads, num_slots, head_dim]) and the MemorySlots fields as string
// metadata (encoder_id, source_tokens, num_segments, mem_size, kind: "embedding" or "kv"). Written by `icae compress`, read by `icae generate --slots`; slots from an encoder keep
// their wire dtype so they can be sent back exactly as they came. No LibTorch.
#ifndef ICAE_COMMON_IO_SLOTS_FILE_H_
#define ICAE_COMMON_IO_SLOTS_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/dtype.h"
#include "common/base/slot_kind.h"

namespace icae {

struct SlotsFile {
  DType dtype = DType::kFloat32;  // A float dtype.
  SlotKind kind = SlotKind::kEmbedding;
  std::vector<int64_t> shape;  // [num_slots, hidden] or [layers, 2, kv_heads, num_slots, head_dim]
  std::string data;               // Raw little-endian elements.
  std::string encoder_id;
  int source_tokens = 0;
  int num_segments = 0;
  int mem_size = 0;

  int64_t num_slots() const {
    const size_t axis = kind == SlotKind::kKv ? 3 : 0;
    return shape.size() > axis ? shape[axis] : 0;
  }
};

absl::Status WriteSlotsFile(const std::string& path, const SlotsFile& slots);
// InvalidArgument when the file has no float `slots` tensor of its kind's rank (2, or 5 for KV)
// or bad metadata.
absl::StatusOr<SlotsFile> ReadSlotsFile(const std::string& path);

}  // namespace icae

#endif  // ICAE_COMMON_IO_SLOTS_FILE_H_
