#include "common/codec/tensor_codec.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace icae {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire format is little-endian; a big-endian host would need byte swaps");

std::optional<DType> FromProtoDataType(v1::DataType dtype) {
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
    default:
      return std::nullopt;
  }
}

v1::DataType ToProtoDataType(DType dtype) {
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
  }
  return v1::DATA_TYPE_UNSPECIFIED;
}

at::ScalarType ToScalarType(DType dtype) {
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
  }
  return at::kFloat;
}

std::optional<DType> FromScalarType(at::ScalarType type) {
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
    default:
      return std::nullopt;
  }
}

absl::Status EncodeTensor(const at::Tensor& tensor, v1::DataType wire_dtype, v1::Tensor* out) {
  std::optional<DType> wire = FromProtoDataType(wire_dtype);
  if (!wire) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported wire dtype ", v1::DataType_Name(wire_dtype)));
  }
  if (!FromScalarType(tensor.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode a tensor of dtype ", c10::toString(tensor.scalar_type())));
  }
  at::Tensor cpu = tensor.to(at::kCPU, ToScalarType(*wire)).contiguous();
  out->Clear();
  out->set_dtype(wire_dtype);
  for (int64_t d : cpu.sizes()) out->add_shape(d);
  const size_t bytes = static_cast<size_t>(cpu.numel()) * ItemSize(*wire);
  std::string* data = out->mutable_data();
  data->resize(bytes);
  if (bytes > 0) std::memcpy(data->data(), cpu.data_ptr(), bytes);
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> DecodeTensor(const v1::Tensor& proto, int64_t max_elements) {
  std::optional<DType> dtype = FromProtoDataType(proto.dtype());
  if (!dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor dtype ", static_cast<int>(proto.dtype()), " (",
                     v1::DataType_Name(proto.dtype()), ") is not supported"));
  }
  std::vector<int64_t> shape(proto.shape().begin(), proto.shape().end());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor shape [", absl::StrJoin(shape, ","), "]: dimension ", i,
                       " is negative"));
    }
  }
  std::optional<int64_t> numel = CheckedNumel(shape.data(), shape.size(), ItemSize(*dtype));
  if (!numel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor shape [", absl::StrJoin(shape, ","), "]: element count overflows int64"));
  }
  if (*numel > max_elements) {
    return absl::InvalidArgumentError(absl::StrCat("tensor of ", *numel,
                                                   " elements exceeds the limit of ", max_elements));
  }
  const uint64_t expected = static_cast<uint64_t>(*numel) * ItemSize(*dtype);
  if (proto.data().size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor data holds ", proto.data().size(), " bytes; shape [", absl::StrJoin(shape, ","),
        "] of ", DTypeName(*dtype), " needs ", expected));
  }
  at::Tensor result = at::empty(shape, at::TensorOptions().dtype(ToScalarType(*dtype)));
  if (expected > 0) std::memcpy(result.data_ptr(), proto.data().data(), expected);
  return result;
}

}  // namespace icae
