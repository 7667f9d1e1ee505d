#include "common/model/tensor_io.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/model/scalar_type.h"

namespace icae {
at::Tensor EntryToTensor(const Checkpoint::Entry& entry, at::ScalarType dtype) {
  const TensorInfo& info = *entry.info;
  absl::Span<const uint8_t> bytes = entry.file->Bytes(info);
  const at::ScalarType stored = ToScalarType(info.dtype);
  auto keep_alive = entry.file;
  at::Tensor view = at::from_blob(
      const_cast<uint8_t*>(bytes.data()), info.shape, [keep_alive](void*) {},
      at::TensorOptions().dtype(stored));
  const bool aligned = reinterpret_cast<uintptr_t>(bytes.data()) % ItemSize(info.dtype) == 0;
  if (stored == dtype && aligned) return view;
  if (!aligned) view = view.clone();  // from_blob on misaligned data is only safe to copy.
  return view.to(dtype);
}

absl::StatusOr<at::Tensor> LoadTensor(const Checkpoint& checkpoint, const std::string& name,
                                      at::ScalarType dtype,
                                      const std::vector<int64_t>& expected_shape) {
  const Checkpoint::Entry* entry = checkpoint.Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat(checkpoint.source(), ": missing tensor '", name, "'"));
  }
  if (!expected_shape.empty() && entry->info->shape != expected_shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(checkpoint.source(), ": tensor '", name, "' has shape [",
                     absl::StrJoin(entry->info->shape, ","), "], expected [",
                     absl::StrJoin(expected_shape, ","), "]"));
  }
  if (IsFloating(entry->info->dtype) != at::isFloatingType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(checkpoint.source(), ": tensor '", name, "' has the wrong kind of dtype"));
  }
  return EntryToTensor(*entry, dtype);
}

absl::Status AddTensor(SafetensorsWriter& writer, const std::string& name,
                       const at::Tensor& tensor) {
  std::optional<DType> dtype = FromScalarType(tensor.scalar_type());
  if (!dtype) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': unsupported dtype ",
                                                   c10::toString(tensor.scalar_type())));
  }
  at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  std::vector<int64_t> shape(cpu.sizes().begin(), cpu.sizes().end());
  absl::string_view bytes(static_cast<const char*>(cpu.data_ptr()),
                          static_cast<size_t>(cpu.numel()) * ItemSize(*dtype));
  return writer.Add(name, *dtype, shape, bytes);
}

absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> ReadAllTensors(
    const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const TensorInfo& info : file->tensors()) {
    Checkpoint::Entry entry{file, &info};
    out.emplace_back(info.name, EntryToTensor(entry, ToScalarType(info.dtype)).clone());
  }
  return out;
}

}  // namespace icae
