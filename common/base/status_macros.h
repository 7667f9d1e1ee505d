// Status propagation macros (Debian's abseil 20220623 ships none).
#ifndef ICAE_COMMON_BASE_STATUS_MACROS_H_
#define ICAE_COMMON_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ICAE_STATUS_CONCAT_INNER_(a, b) a##b
#define ICAE_STATUS_CONCAT_(a, b) ICAE_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::absl::Status icae_status_ = (expr);                       \
    if (!icae_status_.ok()) return icae_status_;                \
  } while (false)

// ASSIGN_OR_RETURN(lhs, rexpr): evaluates `rexpr` (an absl::StatusOr<T>); on error returns its
// status, else moves the value into `lhs` (which may be a declaration: `auto x`).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ICAE_ASSIGN_OR_RETURN_IMPL_(ICAE_STATUS_CONCAT_(icae_statusor_, __LINE__), lhs, rexpr)

#define ICAE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // ICAE_COMMON_BASE_STATUS_MACROS_H_
