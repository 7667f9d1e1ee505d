// Checkpoint tensors as at::Tensor, and at::Tensor into safetensors files.
#ifndef ICAE_COMMON_MODEL_TENSOR_IO_H_
#define ICAE_COMMON_MODEL_TENSOR_IO_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/io/checkpoint.h"
#include "common/io/safetensors_writer.h"

namespace icae {

// The tensor `name` of `checkpoint` as `dtype` on the CPU. When the stored dtype is `dtype` and
// the bytes are aligned, the result is a read-only view of the memory mapping (no copy); it keeps
// the mapping alive. Otherwise a converted copy. NotFound when absent; InvalidArgument when the
// shape differs from `expected_shape` (unless that is empty).
absl::StatusOr<at::Tensor> LoadTensor(const Checkpoint& checkpoint, const std::string& name,
                                      at::ScalarType dtype,
                                      const std::vector<int64_t>& expected_shape = {});

// A view (or converted copy) of one entry.
at::Tensor EntryToTensor(const Checkpoint::Entry& entry, at::ScalarType dtype);

// Adds `tensor` (any device/layout, float32/float16/bfloat16/int32/int64) to `writer`.
absl::Status AddTensor(SafetensorsWriter& writer, const std::string& name,
                       const at::Tensor& tensor);

// Reads every tensor of a safetensors file into a name -> tensor map (copies).
absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> ReadAllTensors(
    const std::string& path);

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_TENSOR_IO_H_
