// The safetensors reader on arbitrary file images: a header it accepts describes tensors whose
// byte ranges lie inside the data area, do not overlap, and match dtype x shape; reading every
// tensor's bytes stays in bounds (ASan checks the reads).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace icae;
  absl::StatusOr<std::shared_ptr<const SafetensorsFile>> file =
      SafetensorsFile::FromBytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!file.ok()) {
    fuzz::RequireClientCode(file.status(), "SafetensorsFile::FromBytes");
    return 0;
  }
  uint64_t previous_end = 0;
  uint64_t checksum = 0;
  for (const TensorInfo& t : (*file)->tensors()) {
    fuzz::Require(t.begin >= previous_end, "tensors overlap", t.name);
    fuzz::Require(t.end >= t.begin, "negative byte range", t.name);
    previous_end = t.end;
    absl::Span<const uint8_t> bytes = (*file)->Bytes(t);
    fuzz::Require(bytes.size() == t.end - t.begin, "Bytes() disagrees with the range", t.name);
    for (uint8_t b : bytes) checksum += b;  // Every byte is read: out of bounds shows in ASan.
    fuzz::Require((*file)->Find(t.name) == &t, "Find() does not return the tensor", t.name);
  }
  return checksum == 0xFFFFFFFFFFFFFFFFull ? 1 : 0;
}
