// Writing safetensors files: tensors in insertion order, header padded with spaces to a multiple
// of 8 bytes (so the data area, and every F32 tensor in it, stays aligned). Not thread-safe.
#ifndef ICAE_COMMON_IO_SAFETENSORS_WRITER_H_
#define ICAE_COMMON_IO_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/base/dtype.h"

namespace icae {

class SafetensorsWriter {
 public:
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Copies `bytes`; InvalidArgument for a duplicate name, a negative dimension or a byte length
  // that is not numel * item size.
  absl::Status Add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                   absl::string_view bytes);
  // The whole file image.
  std::string Serialize() const;
  // Writes atomically (temporary file, then rename).
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin;
    uint64_t end;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
  std::string data_;
};

}  // namespace icae

#endif  // ICAE_COMMON_IO_SAFETENSORS_WRITER_H_
