#include "common/codec/tensor_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/codec/int8_rows.h"

namespace icae {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire format is little-endian; a big-endian host would need byte swaps");

namespace {

// "FLOAT32", or the number for a value outside the enum (proto3 keeps unknown enum values).
std::string DataTypeLabel(v1::DataType dtype) {
  if (v1::DataType_IsValid(dtype)) return v1::DataType_Name(dtype);
  return absl::StrCat(static_cast<int>(dtype));
}

// The rest of DecodeTensor for an INT8 tensor whose dtype, shape and byte length are checked.
absl::StatusOr<at::Tensor> DecodeInt8(const v1::Tensor& proto, const std::vector<int64_t>& shape,
                                      int64_t max_elements) {
  if (shape.empty()) return absl::InvalidArgumentError("an INT8 tensor needs rank >= 1 (rows)");
  const std::vector<int64_t> rows_shape(shape.begin(), shape.end() - 1);
  const v1::Tensor& scale = proto.scale();
  if (!proto.has_scale() || scale.dtype() != v1::FLOAT32 ||
      !std::equal(scale.shape().begin(), scale.shape().end(), rows_shape.begin(),
                  rows_shape.end())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "INT8 tensor [", absl::StrJoin(shape, ","), "] needs a FLOAT32 scale of shape [",
        absl::StrJoin(rows_shape, ","), "], got ",
        proto.has_scale() ? absl::StrCat(DataTypeLabel(scale.dtype()), " [",
                                         absl::StrJoin(scale.shape(), ","), "]")
                          : "none"));
  }
  // The product of the shape's non-zero dimensions fits in int64 (checked), so the rows' does.
  int64_t rows = 1;
  for (int64_t d : rows_shape) rows *= d;
  if (rows > max_elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("INT8 tensor has ", rows, " rows, more than the limit of ", max_elements));
  }
  if (scale.data().size() != static_cast<uint64_t>(rows) * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat("INT8 scale holds ", scale.data().size(),
                                                   " bytes; ", rows, " rows need ",
                                                   rows * static_cast<int64_t>(sizeof(float))));
  }
  try {
    std::vector<float> scales(static_cast<size_t>(rows));
    if (rows > 0) std::memcpy(scales.data(), scale.data().data(), scale.data().size());
    for (float s : scales) {
      if (!(s >= 0 && std::isfinite(s))) {
        return absl::InvalidArgumentError("INT8 scale has a negative or non-finite value");
      }
    }
    at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
    const int64_t width = shape.back();
    if (width > 0 && rows > 0 &&
        !DequantizeRowsInt8(reinterpret_cast<const int8_t*>(proto.data().data()), scales.data(),
                            rows, width, out.data_ptr<float>())) {
      return absl::InvalidArgumentError("INT8 tensor holds -128 (the range is [-127, 127])");
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot decode tensor: ", e.what_without_backtrace()));
  }
}

}  // namespace

absl::Status WriteWireElements(const at::Tensor& tensor, DType wire, void* data, float* scales) {
  try {
    if (wire != DType::kInt8) {
      // One pass that converts the dtype, gathers strides and leaves the device (copy_ rounds
      // exactly as Tensor::to does).
      at::from_blob(data, tensor.sizes(), at::TensorOptions().dtype(ToScalarType(wire)))
          .copy_(tensor);
      return absl::OkStatus();
    }
    if (!at::isFloatingType(tensor.scalar_type()) || tensor.dim() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("int8 quantization needs a floating tensor of rank >= 1, not ",
                       c10::toString(tensor.scalar_type()), " of rank ", tensor.dim()));
    }
    const int64_t width = tensor.size(-1);
    const int64_t rows = width == 0 ? 0 : tensor.numel() / width;
    if (rows == 0) {
      // Nothing to quantize; a zero-width tensor still has numel / 0 := 0 scale rows written.
      return absl::OkStatus();
    }
    const at::Tensor x = tensor.to(at::kCPU, at::kFloat).contiguous();
    QuantizeRowsInt8(x.data_ptr<float>(), rows, width, static_cast<int8_t*>(data), scales);
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot encode tensor: ", e.what_without_backtrace()));
  }
}

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
  out->Clear();
  out->set_dtype(wire_dtype);
  for (int64_t d : tensor.sizes()) out->add_shape(d);
  const size_t bytes = static_cast<size_t>(tensor.numel()) * ItemSize(*wire);
  if (tensor.device().is_cpu() && tensor.scalar_type() == ToScalarType(*wire) &&
      tensor.is_contiguous() && *wire != DType::kInt8) {
    // Already wire-shaped: a single copy into a string the message then takes over
    // (set_data(ptr, size) would copy twice).
    out->set_data(std::string(static_cast<const char*>(tensor.data_ptr()), bytes));
    return absl::OkStatus();
  }
  std::string* data = out->mutable_data();
  data->resize(bytes);
  std::string* scale_bytes = nullptr;
  if (*wire == DType::kInt8 && tensor.dim() > 0) {
    v1::Tensor* scale = out->mutable_scale();
    scale->set_dtype(v1::FLOAT32);
    int64_t rows = 1;
    for (int64_t d = 0; d + 1 < tensor.dim(); ++d) {
      scale->add_shape(tensor.size(d));
      rows *= tensor.size(d);
    }
    scale_bytes = scale->mutable_data();
    scale_bytes->resize(static_cast<size_t>(rows) * sizeof(float));
  }
  const absl::Status status = WriteWireElements(
      tensor, *wire, data->data(),
      scale_bytes != nullptr ? reinterpret_cast<float*>(scale_bytes->data()) : nullptr);
  if (!status.ok()) out->Clear();
  return status;
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
  if (*dtype == DType::kInt8) return DecodeInt8(proto, shape, max_elements);
  if (proto.has_scale()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor of ", DTypeName(*dtype), " carries a scale (only INT8 has one)"));
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
