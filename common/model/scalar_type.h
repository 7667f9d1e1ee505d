// DType (the checkpoint and wire element types) <-> at::ScalarType. Header-only so that the codec,
// which must not link the model library, shares the one mapping.
#ifndef ICAE_COMMON_MODEL_SCALAR_TYPE_H_
#define ICAE_COMMON_MODEL_SCALAR_TYPE_H_

#include <ATen/ATen.h>

#include <optional>

#include "common/base/dtype.h"

namespace icae {

inline at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return at::kFloat;
    case DType::kFloat16:
      return at::kHalf;
    case DType::kBFloat16:
      return at::kBFloat16;
    case DType::kInt32:
      return at::kInt;
    case DType::kInt64:
      return at::kLong;
    case DType::kInt8:
      return at::kChar;
  }
  return at::kFloat;
}

// nullopt for a scalar type with no DType (double, bool, complex, ...).
inline std::optional<DType> FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kInt:
      return DType::kInt32;
    case at::kLong:
      return DType::kInt64;
    case at::kChar:
      return DType::kInt8;
    default:
      return std::nullopt;
  }
}

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_SCALAR_TYPE_H_
