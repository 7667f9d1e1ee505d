// DType <-> the wire's v1::DataType. Header-only and free of LibTorch, so that proto-only code
// (request conversion in the servers) shares the codec's one mapping.
#ifndef ICAE_COMMON_CODEC_PROTO_DTYPE_H_
#define ICAE_COMMON_CODEC_PROTO_DTYPE_H_

#include <optional>

#include "common/base/dtype.h"
#include "icae/v1/tensor.pb.h"

namespace icae {

// nullopt for DATA_TYPE_UNSPECIFIED and for values this build does not know.
inline std::optional<DType> FromProtoDataType(v1::DataType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return DType::kFloat32;
    case v1::FLOAT16:
      return DType::kFloat16;
    case v1::BFLOAT16:
      return DType::kBFloat16;
    case v1::INT32:
      return DType::kInt32;
    case v1::INT64:
      return DType::kInt64;
    case v1::INT8:
      return DType::kInt8;
    default:
      return std::nullopt;
  }
}

inline v1::DataType ToProtoDataType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return v1::FLOAT32;
    case DType::kFloat16:
      return v1::FLOAT16;
    case DType::kBFloat16:
      return v1::BFLOAT16;
    case DType::kInt32:
      return v1::INT32;
    case DType::kInt64:
      return v1::INT64;
    case DType::kInt8:
      return v1::INT8;
  }
  return v1::DATA_TYPE_UNSPECIFIED;
}

}  // namespace icae

#endif  // ICAE_COMMON_CODEC_PROTO_DTYPE_H_
