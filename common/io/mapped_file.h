// A read-only memory mapping of a whole file. Thread-safe after construction.
#ifndef ICAE_COMMON_IO_MAPPED_FILE_H_
#define ICAE_COMMON_IO_MAPPED_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace icae {

class MappedFile {
 public:
  // NotFound when the file does not exist; InvalidArgument when it is not a regular file.
  static absl::StatusOr<std::shared_ptr<const MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, uint64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  uint64_t size_;
};

// Reads a whole (small) file into a string.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes atomically: to "<path>.tmp", then rename.
absl::Status WriteStringToFile(const std::string& path, const std::string& contents);

}  // namespace icae

#endif  // ICAE_COMMON_IO_MAPPED_FILE_H_
