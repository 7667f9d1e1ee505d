// Conversion between at::Tensor and the wire Tensor (raw little-endian bytes + dtype + shape).
// Every tensor the services send or receive goes through here (the encoder's slot rows through
// WriteWireElements, straight into the response buffer).
//
// INT8 is symmetric per-row quantization of float values: for each row (a vector along the last
// dimension) scale = max|x| / 127 and q = round(x / scale) in [-127, 127] (all zeros and scale 0
// for a row of zeros); the scales travel as a FLOAT32 Tensor in `scale` shaped like the tensor
// without its last dimension. Decoding gives the float32 tensor q * scale.
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

// Writes the elements of `tensor` (any device, strides and supported dtype) as `wire` into `data`,
// which holds numel * ItemSize(wire) bytes; for kInt8 (a floating tensor of rank >= 1) also the
// per-row scales into `scales` (numel / last dimension floats), else `scales` is unused. The path
// EncodeTensor takes, for callers that own the destination buffer.
absl::Status WriteWireElements(const at::Tensor& tensor, DType wire, void* data, float* scales);

// Most dimensions a wire tensor may have (KV slots have 5).
inline constexpr int kMaxTensorRank = 8;

// Validates `proto` and returns a new CPU tensor of its dtype and shape (float32 for INT8: the
// dequantized values, after checking that no element is -128 and that `scale` is a FLOAT32 tensor
// of the right shape with finite, non-negative values).
absl::StatusOr<at::Tensor> DecodeTensor(const v1::Tensor& proto, int64_t max_elements);

}  // namespace icae

#endif  // ICAE_COMMON_CODEC_TENSOR_CODEC_H_
