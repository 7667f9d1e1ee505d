// Element types shared by the safetensors files, the wire codec and the model.
#ifndef ICAE_COMMON_BASE_DTYPE_H_
#define ICAE_COMMON_BASE_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace icae {

// kInt8 is a plain signed byte; on the wire (v1::INT8) it carries per-row scales (tensor_codec.h).
enum class DType { kFloat32, kFloat16, kBFloat16, kInt32, kInt64, kInt8 };

inline size_t ItemSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kInt64:
      return 8;
    case DType::kInt8:
      return 1;
  }
  return 0;
}

inline bool IsFloating(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat16 || dtype == DType::kBFloat16;
}

// Safetensors spelling: F32, F16, BF16, I32, I64, I8.
absl::string_view SafetensorsName(DType dtype);
std::optional<DType> DTypeFromSafetensorsName(absl::string_view name);
// Human spelling used by flags and logs: float32, float16, bfloat16, int32, int64, int8.
absl::string_view DTypeName(DType dtype);
std::optional<DType> DTypeFromName(absl::string_view name);

// Overflow-checked element count of `shape`: nullopt for a negative dimension or when the count
// (or count * item_size) does not fit in int64. The product of the non-zero dimensions must fit
// too, even when a zero makes the count 0: an allocator multiplies them all ({kMax, 2, 0} cannot
// be allocated).
std::optional<int64_t> CheckedNumel(const int64_t* dims, size_t rank, size_t item_size);

}  // namespace icae

#endif  // ICAE_COMMON_BASE_DTYPE_H_
