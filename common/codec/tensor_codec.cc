#include "common/codec/tensor_codec.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace icae {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire format is little-endian; a big-endian host would need byte swaps");

namespace {

// "FLOAT32", or the number for a value outside the enum (proto3 keeps unknown enum values).
std::string DataTypeLabel(v1::DataType dtype) {
  if (v1::DataType_IsValid(dtype)) return v1::DataType_Name(dtype);
  return absl::StrCat(static_cast<int>(dtype));
}

}  // namespace

absl::Status EncodeTensor(const at::Tensor& tensor, v1::DataType wire_dtype, v1::Tensor* out) {
  std::optional<DType> wire = FromProtoDataType(wire_dtype);
  if (!wire) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported wire dtype ", DataTypeLabel(wire_dtype)));
  }
  if (!tensor.defined()) return absl::InvalidArgumentError("cannot encode an undefined tensor");
  if (tensor.layout() != at::kStrided) {
    return absl::InvalidArgumentError(absl::StrCat("cannot encode a tensor with layout ",
                                                   c10::toString(tensor.layout()),
                                                   "; only dense (strided) tensors"));
  }
  if (!FromScalarType(tensor.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode a tensor of dtype ", c10::toString(tensor.scalar_type())));
  }
  const at::ScalarType target = ToScalarType(*wire);
  try {
    out->Clear();
    out->set_dtype(wire_dtype);
    for (int64_t d : tensor.sizes()) out->add_shape(d);
    const size_t bytes = static_cast<size_t>(tensor.numel()) * ItemSize(*wire);
    if (tensor.device().is_cpu() && tensor.scalar_type() == target && tensor.is_contiguous()) {
      // Already wire-shaped: a single copy into a string the message then takes over
      // (set_data(ptr, size) would copy twice).
      out->set_data(std::string(static_cast<const char*>(tensor.data_ptr()), bytes));
    } else {
      // One pass that converts the dtype, gathers strides and leaves the device, written straight
      // into the message's buffer (copy_ rounds exactly as Tensor::to does).
      std::string* data = out->mutable_data();
      data->resize(bytes);
      at::Tensor wire_view =
          at::from_blob(data->data(), tensor.sizes(), at::TensorOptions().dtype(target));
      wire_view.copy_(tensor);
    }
  } catch (const c10::Error& e) {
    out->Clear();
    return absl::InternalError(absl::StrCat("cannot encode tensor: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> DecodeTensor(const v1::Tensor& proto, int64_t max_elements) {
  std::optional<DType> dtype = FromProtoDataType(proto.dtype());
  if (!dtype) {
    const std::string name =
        v1::DataType_IsValid(proto.dtype()) ? v1::DataType_Name(proto.dtype()) : "unknown";
    return absl::InvalidArgumentError(absl::StrCat("tensor dtype ", static_cast<int>(proto.dtype()),
                                                   " (", name, ") is not supported"));
  }
  if (proto.shape_size() > kMaxTensorRank) {
    return absl::InvalidArgumentError(absl::StrCat("tensor rank ", proto.shape_size(),
                                                   " exceeds the limit of ", kMaxTensorRank));
  }
  std::vector<int64_t> shape(proto.shape().begin(), proto.shape().end());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor shape [", absl::StrJoin(shape, ","),
                                                     "]: dimension ", i, " is negative"));
    }
  }
  std::optional<int64_t> numel = CheckedNumel(shape.data(), shape.size(), ItemSize(*dtype));
  if (!numel) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor shape [", absl::StrJoin(shape, ","),
                     "]: element count (or byte size) overflows int64"));
  }
  if (*numel > max_elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor of ", *numel, " elements exceeds the limit of ", max_elements));
  }
  const uint64_t expected = static_cast<uint64_t>(*numel) * ItemSize(*dtype);
  if (proto.data().size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor data holds ", proto.data().size(), " bytes; shape [",
                     absl::StrJoin(shape, ","), "] of ", DTypeName(*dtype), " needs ", expected));
  }
  try {
    at::Tensor result = at::empty(shape, at::TensorOptions().dtype(ToScalarType(*dtype)));
    if (expected > 0) std::memcpy(result.data_ptr(), proto.data().data(), expected);
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot decode tensor: ", e.what_without_backtrace()));
  }
}

}  // namespace icae
