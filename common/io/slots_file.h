// Memory slots saved to disk: a safetensors file with one tensor `slots` [num_slots, hidden] and
// the MemorySlots fields as string metadata (encoder_id, source_tokens, num_segments, mem_size,
// kind). Written by `icae compress`, read by `icae generate --slots`; slots from an encoder keep
// their wire dtype so they can be sent back exactly as they came. No LibTorch.
#ifndef ICAE_COMMON_IO_SLOTS_FILE_H_
#define ICAE_COMMON_IO_SLOTS_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/dtype.h"

namespace icae {

struct SlotsFile {
  DType dtype = DType::kFloat32;  // A float dtype.
  std::vector<int64_t> shape;     // [num_slots, hidden]
  std::string data;               // Raw little-endian elements.
  std::string encoder_id;
  int source_tokens = 0;
  int num_segments = 0;
  int mem_size = 0;
};

absl::Status WriteSlotsFile(const std::string& path, const SlotsFile& slots);
// InvalidArgument when the file has no 2-D float `slots` tensor or bad metadata.
absl::StatusOr<SlotsFile> ReadSlotsFile(const std::string& path);

}  // namespace icae

#endif  // ICAE_COMMON_IO_SLOTS_FILE_H_
