#include "common/base/runtime_options.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace icae {
namespace {

// -2 when `device` is malformed.
int ParseDevice(absl::string_view device) {
  if (device == "cpu") return -1;
  if (device == "cuda") return 0;
  int index = 0;
  if (absl::ConsumePrefix(&device, "cuda:") && !device.empty() && absl::ascii_isdigit(device[0]) &&
      absl::SimpleAtoi(device, &index) && index >= 0) {
    return index;
  }
  return -2;
}

}  // namespace

absl::Status RuntimeOptions::Validate() const {
  if (ParseDevice(device) == -2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device '", device, "': expected cpu, cuda or cuda:N"));
  }
  if (dtype != "float32" && dtype != "fp32" && dtype != "bfloat16" && dtype != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype '", dtype, "': expected float32 or bfloat16"));
  }
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads ", threads, " must be >= 0"));
  }
  return absl::OkStatus();
}

std::string RuntimeOptions::CanonicalDtype() const {
  return dtype == "bfloat16" || dtype == "bf16" ? "bfloat16" : "float32";
}

int RuntimeOptions::CudaIndex() const { return ParseDevice(device); }

}  // namespace icae
