// Conversion between at::Tensor and the wire Tensor (raw little-endian bytes + dtype + shape).
//
// Decoding never trusts the message: the dtype must be known, at most kMaxTensorRank dimensions,
// each >= 0, the element count (and the product of the non-zero dimensions) must fit in int64,
// the count stay within `max_elements`, and the byte length must be exactly numel * item size; only then are the bytes
// copied into a new tensor. Every failure is InvalidArgument naming the problem. Round trips are bit-exact. Thread-safe (no shared state).
#ifndef ICAE_COMMON_CODEC_TENSOR_CODEC_H_
#define ICAE_COMMON_CODEC_TENSOR_CODEC_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "common/base/dtype.h"
#include "common/codec/proto_dtype.h"
#include "common/model/scalar_type.h"
#include "icae/v1/tensor.pb.h"

namespace icae {

// Writes `tensor` (any device, any strides) into `out` as `wire_dtype`, converting the values
// when the dtypes differ (e.g. float32 compute -> bfloat16 wire). InvalidArgument for an
// unsupported source dtype or wire dtype, or an undefined or non-dense (e.g. sparse) tensor.
absl::Status EncodeTensor(const at::Tensor& tensor, v1::DataType wire_dtype, v1::Tensor* out);

// Most dimensions a wire tensor may have (KV slots have 5).
inline constexpr int kMaxTensorRank = 8;

// Validates `proto` and returns a new CPU tensor of its dtype and shape.
absl::StatusOr<at::Tensor> DecodeTensor(const v1::Tensor& proto, int64_t max_elements);

}  // namespace icae

#endif  // ICAE_COMMON_CODEC_TENSOR_CODEC_H_
