// Command-line flags shared by every binary.
//
//   FlagSet flags("icae-encoder --model DIR --adapter PATH [options]");
//   flags.String("model", &model_dir, "HF model directory");
//   flags.Int("threads", &threads, "intra-op threads");
//   absl::Status s = flags.Parse(argc, argv);
//
// Accepted forms: --name=value, --name value, --bool_flag, --bool_flag=false, --nobool_flag
// (also --no-bool_flag, --no_bool_flag). A separate value may not start with "--" (write
// --name=--value for that); -h, -help and --help request help.
// Dashes and underscores in names are interchangeable (--max-new-tokens == --max_new_tokens).
// A list flag takes every following argument up to the next one that starts with "--", and may be
// repeated: --slots a.st b.st --slots c.st. "--" ends the flags. Not thread-safe.
#ifndef ICAE_COMMON_BASE_FLAGS_H_
#define ICAE_COMMON_BASE_FLAGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace icae {

class FlagSet {
 public:
  explicit FlagSet(std::string usage) : usage_(std::move(usage)) {}

  void String(absl::string_view name, std::string* value, absl::string_view help);
  void Int(absl::string_view name, int* value, absl::string_view help);
  void Int64(absl::string_view name, int64_t* value, absl::string_view help);
  void Double(absl::string_view name, double* value, absl::string_view help);
  void Bool(absl::string_view name, bool* value, absl::string_view help);
  void StringList(absl::string_view name, std::vector<std::string>* values, absl::string_view help);

  // Parses argv[1..]. Arguments that are not flags go to `positional` (an error when null).
  // InvalidArgument names the offending flag. After "--help" or "-h", help_requested() is true.
  absl::Status Parse(int argc, char** argv, std::vector<std::string>* positional = nullptr);
  absl::Status Parse(const std::vector<std::string>& args,
                     std::vector<std::string>* positional = nullptr);

  bool help_requested() const { return help_requested_; }
  // True when the flag appeared on the command line.
  bool IsSet(absl::string_view name) const;
  // Usage line followed by one line per flag with its help and default.
  std::string Usage() const;
  // "name=value" for every flag, for the start-up log line.
  std::string Effective() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_value;
    bool is_bool = false;
    bool is_list = false;
    bool set = false;
    std::function<absl::Status(absl::string_view)> parse;
    std::function<std::string()> print;
  };
  static Flag NewFlag(absl::string_view name, absl::string_view help);
  void Add(Flag flag);
  Flag* Find(absl::string_view name);

  std::string usage_;
  std::map<std::string, Flag> flags_;
  bool help_requested_ = false;
};

// Parses flags for a binary's main(): prints usage and exits 0 on --help; on a parse error prints
// "<program>: <reason>" on one line and exits 2.
void ParseFlagsOrExit(FlagSet& flags, int argc, char** argv,
                      std::vector<std::string>* positional = nullptr);

// Parses "a,b,c" into integers; InvalidArgument names `what`.
absl::Status ParseIntList(absl::string_view text, absl::string_view what, std::vector<int>* out);

}  // namespace icae

#endif  // ICAE_COMMON_BASE_FLAGS_H_
