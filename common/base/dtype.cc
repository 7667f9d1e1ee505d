#include "common/base/dtype.h"

#include <limits>

namespace icae {

absl::string_view SafetensorsName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "F32";
    case DType::kFloat16:
      return "F16";
    case DType::kBFloat16:
      return "BF16";
    case DType::kInt32:
      return "I32";
    case DType::kInt64:
      return "I64";
    case DType::kInt8:
      return "I8";
  }
  return "?";
}

std::optional<DType> DTypeFromSafetensorsName(absl::string_view name) {
  if (name == "F32") return DType::kFloat32;
  if (name == "F16") return DType::kFloat16;
  if (name == "BF16") return DType::kBFloat16;
  if (name == "I32") return DType::kInt32;
  if (name == "I64") return DType::kInt64;
  if (name == "I8") return DType::kInt8;
  return std::nullopt;
}

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kInt8:
      return "int8";
  }
  return "?";
}

std::optional<DType> DTypeFromName(absl::string_view name) {
  if (name == "float32" || name == "fp32" || name == "f32") return DType::kFloat32;
  if (name == "float16" || name == "fp16" || name == "f16") return DType::kFloat16;
  if (name == "bfloat16" || name == "bf16") return DType::kBFloat16;
  if (name == "int32") return DType::kInt32;
  if (name == "int64") return DType::kInt64;
  if (name == "int8") return DType::kInt8;
  return std::nullopt;
}

std::optional<int64_t> CheckedNumel(const int64_t* dims, size_t rank, size_t item_size) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t product = 1;  // Of the non-zero dimensions: allocators multiply them all.
  bool zero = false;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0) return std::nullopt;
    if (dims[i] == 0) {
      zero = true;
      continue;
    }
    if (product > kMax / dims[i]) return std::nullopt;
    product *= dims[i];
  }
  if (item_size > 0 && product > kMax / static_cast<int64_t>(item_size)) return std::nullopt;
  return zero ? 0 : product;
}

}  // namespace icae
