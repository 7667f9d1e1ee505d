// The boundary between LibTorch's exceptions and absl::Status: model code throws c10::Error on
// internal failures (shape bugs, allocation failures); public entry points run their body through
// CatchTorch so that nothing throws past the model layer.
#ifndef ICAE_COMMON_MODEL_TORCH_STATUS_H_
#define ICAE_COMMON_MODEL_TORCH_STATUS_H_

#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace icae {

// Runs `fn` (returning T, Status or StatusOr<T>); a thrown exception becomes InternalError
// (ResourceExhausted for out-of-memory) prefixed with `what`.
template <typename Fn>
auto CatchTorch(absl::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    if (message.find("alloc") != std::string::npos ||
        message.find("out of memory") != std::string::npos) {
      return absl::ResourceExhaustedError(absl::StrCat(what, ": ", message));
    }
    return absl::InternalError(absl::StrCat(what, ": ", message));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace icae

#endif  // ICAE_COMMON_MODEL_TORCH_STATUS_H_
