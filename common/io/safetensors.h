// Reading safetensors files: an 8-byte little-endian header length N, an N-byte JSON header
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// data area. The file is memory-mapped; tensor bytes are views into the mapping (no copy).
//
// Open() validates everything before any tensor byte is read: file and header lengths, JSON,
// dtypes, shapes, offsets inside the data area, no overlaps, byte length == numel * item size, no
// duplicate names. Each failure is InvalidArgument naming the file (and the tensor).
// A SafetensorsFile is immutable and thread-safe.
#ifndef ICAE_COMMON_IO_SAFETENSORS_H_
#define ICAE_COMMON_IO_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/base/dtype.h"
#include "common/io/mapped_file.h"

namespace icae {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  // Byte range relative to the start of the data area.
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Largest header accepted (the format's own reference implementation uses 100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  static absl::StatusOr<std::shared_ptr<const SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory image (used by tests and fuzzers); `name` appears in errors.
  static absl::StatusOr<std::shared_ptr<const SafetensorsFile>> FromBytes(std::string bytes,
                                                                          std::string name);

  const std::string& path() const { return path_; }
  // Tensors ordered by their offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* Find(absl::string_view name) const;
  // The tensor's bytes inside the mapping; valid while this object lives.
  absl::Span<const uint8_t> Bytes(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The JSON header exactly as stored (used for model fingerprints).
  absl::string_view header() const { return header_; }

 private:
  SafetensorsFile() = default;
  static absl::StatusOr<std::shared_ptr<const SafetensorsFile>> Parse(
      std::shared_ptr<const MappedFile> mapping, std::string owned, std::string path);

  std::string path_;
  std::shared_ptr<const MappedFile> mapping_;  // Null for FromBytes.
  std::string owned_;                          // The image for FromBytes.
  const uint8_t* data_area_ = nullptr;
  std::string header_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace icae

#endif  // ICAE_COMMON_IO_SAFETENSORS_H_
