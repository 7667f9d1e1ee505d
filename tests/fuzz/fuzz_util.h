// Shared pieces of the fuzz targets. Each target defines LLVMFuzzerTestOneInput; built with
// -DICAE_FUZZ=ON and clang it links libFuzzer (tools/fuzz/run.sh, `make fuzz`), otherwise
// replay_main.cc runs it over its committed corpus (a ctest per target). A target aborts (a
// finding) only when an invariant of the code under test breaks: a refused input must be refused
// with a status, never a crash, an out-of-bounds read or a wrong code.
#ifndef ICAE_TESTS_FUZZ_FUZZ_UTIL_H_
#define ICAE_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "common/io/tokenizer.h"
#include "google/protobuf/stubs/logging.h"

namespace icae::fuzz {

// The demo model and tokenizer the request targets load once (compiled-in source path).
inline std::string DemoDir(const std::string& leaf) {
  return std::string(ICAE_SOURCE_DIR) + "/models/demo/" + leaf;
}

// Protobuf logs every string field that is not UTF-8 at ERROR; a fuzzer makes millions of them.
inline void QuietProtobuf() {
  static const bool once = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)once;
}

// Aborts with a message: the fuzzer records the input as a crash.
[[noreturn]] inline void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz invariant broken: %s: %s\n", what, detail.c_str());
  std::abort();
}

inline void Require(bool condition, const char* what, const std::string& detail = "") {
  if (!condition) Fail(what, detail);
}

// A refusal of client input must be one of the codes a client can act on.
inline void RequireClientCode(const absl::Status& status, const char* what) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOutOfRange:
      return;
    default:
      Fail(what, status.ToString());
  }
}

// The demo model's tokenizer, loaded once (a failure to load aborts: the fuzzer cannot run).
inline const Tokenizer& DemoTokenizer() {
  static const Tokenizer* tokenizer = [] {
    auto t = Tokenizer::Load(DemoDir("base/tokenizer.model"));
    Require(t.ok(), "loading the demo tokenizer", t.status().ToString());
    return t->release();
  }();
  return *tokenizer;
}

}  // namespace icae::fuzz

#endif  // ICAE_TESTS_FUZZ_FUZZ_UTIL_H_
