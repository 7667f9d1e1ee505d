#include "common/base/flags.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"

namespace icae {
namespace {

std::string Normalize(absl::string_view name) { return absl::StrReplaceAll(name, {{"-", "_"}}); }

absl::Status BadValue(absl::string_view name, absl::string_view value, absl::string_view type) {
  return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", value, "' is not ", type));
}

}  // namespace

FlagSet::Flag FlagSet::NewFlag(absl::string_view name, absl::string_view help) {
  Flag flag;
  flag.name = std::string(name);
  flag.help = std::string(help);
  return flag;
}

void FlagSet::Add(Flag flag) {
  flag.default_value = flag.print();
  std::string key = Normalize(flag.name);
  flags_[key] = std::move(flag);
}

FlagSet::Flag* FlagSet::Find(absl::string_view name) {
  auto it = flags_.find(Normalize(name));
  return it == flags_.end() ? nullptr : &it->second;
}

bool FlagSet::IsSet(absl::string_view name) const {
  auto it = flags_.find(Normalize(name));
  return it != flags_.end() && it->second.set;
}

void FlagSet::String(absl::string_view name, std::string* value, absl::string_view help) {
  Flag f = NewFlag(name, help);
  f.parse = [value](absl::string_view v) {
    *value = std::string(v);
    return absl::OkStatus();
  };
  f.print = [value] { return *value; };
  Add(std::move(f));
}

void FlagSet::Int(absl::string_view name, int* value, absl::string_view help) {
  Flag f = NewFlag(name, help);
  std::string n(name);
  f.parse = [value, n](absl::string_view v) {
    if (!absl::SimpleAtoi(v, value)) return BadValue(n, v, "an integer");
    return absl::OkStatus();
  };
  f.print = [value] { return absl::StrCat(*value); };
  Add(std::move(f));
}

void FlagSet::Int64(absl::string_view name, int64_t* value, absl::string_view help) {
  Flag f = NewFlag(name, help);
  std::string n(name);
  f.parse = [value, n](absl::string_view v) {
    if (!absl::SimpleAtoi(v, value)) return BadValue(n, v, "an integer");
    return absl::OkStatus();
  };
  f.print = [value] { return absl::StrCat(*value); };
  Add(std::move(f));
}

void FlagSet::Double(absl::string_view name, double* value, absl::string_view help) {
  Flag f = NewFlag(name, help);
  std::string n(name);
  f.parse = [value, n](absl::string_view v) {
    if (!absl::SimpleAtod(v, value)) return BadValue(n, v, "a number");
    return absl::OkStatus();
  };
  f.print = [value] { return absl::StrCat(*value); };
  Add(std::move(f));
}

void FlagSet::Bool(absl::string_view name, bool* value, absl::string_view help) {
  Flag f = NewFlag(name, help);
  f.is_bool = true;
  std::string n(name);
  f.parse = [value, n](absl::string_view v) {
    if (!absl::SimpleAtob(v, value)) return BadValue(n, v, "true or false");
    return absl::OkStatus();
  };
  f.print = [value] { return *value ? std::string("true") : std::string("false"); };
  Add(std::move(f));
}

void FlagSet::StringList(absl::string_view name, std::vector<std::string>* values,
                         absl::string_view help) {
  Flag f = NewFlag(name, help);
  f.is_list = true;
  f.parse = [values](absl::string_view v) {
    values->emplace_back(v);
    return absl::OkStatus();
  };
  f.print = [values] { return absl::StrJoin(*values, ","); };
  Add(std::move(f));
}

absl::Status FlagSet::Parse(int argc, char** argv, std::vector<std::string>* positional) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Parse(args, positional);
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args,
                            std::vector<std::string>* positional) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    const bool is_flag = !flags_done && absl::StartsWith(arg, "-") && arg.size() > 1;
    if (!is_flag) {
      if (positional == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      }
      positional->emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      help_requested_ = true;
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    absl::string_view name = body;
    absl::string_view value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    Flag* flag = Find(name);
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      // --nofoo, --no-foo and --no_foo all clear the bool flag foo.
      absl::string_view base = name.substr(2);
      if (!base.empty() && (base[0] == '-' || base[0] == '_')) base.remove_prefix(1);
      Flag* negated = Find(base);
      if (negated != nullptr && negated->is_bool) {
        RETURN_IF_ERROR(negated->parse("false"));
        negated->set = true;
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    flag->set = true;
    if (flag->is_bool) {
      RETURN_IF_ERROR(flag->parse(has_value ? value : "true"));
      continue;
    }
    if (has_value) {
      RETURN_IF_ERROR(flag->parse(value));
      continue;
    }
    // "--model --port 1" is a forgotten value, not a model named "--port" (use --model=--x).
    if (i + 1 >= args.size() || absl::StartsWith(args[i + 1], "--")) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    RETURN_IF_ERROR(flag->parse(args[++i]));
    if (flag->is_list) {
      while (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
        RETURN_IF_ERROR(flag->parse(args[++i]));
      }
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n");
  for (const auto& [key, flag] : flags_) {
    absl::StrAppend(&out, "  --", flag.name, flag.is_bool ? "" : " VALUE", "  ", flag.help);
    if (!flag.default_value.empty()) absl::StrAppend(&out, " (default: ", flag.default_value, ")");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

std::string FlagSet::Effective() const {
  std::vector<std::string> parts;
  for (const auto& [key, flag] : flags_)
    parts.push_back(absl::StrCat(flag.name, "=", flag.print()));
  return absl::StrJoin(parts, " ");
}

void ParseFlagsOrExit(FlagSet& flags, int argc, char** argv, std::vector<std::string>* positional) {
  const char* program = argc > 0 ? argv[0] : "icae";
  if (const char* slash = std::strrchr(program, '/')) program = slash + 1;
  absl::Status status = flags.Parse(argc, argv, positional);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    std::exit(0);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, std::string(status.message()).c_str());
    std::exit(2);
  }
}

absl::Status ParseIntList(absl::string_view text, absl::string_view what, std::vector<int>* out) {
  out->clear();
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(piece), &value)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": '", piece, "' is not an integer"));
    }
    out->push_back(value);
  }
  return absl::OkStatus();
}

}  // namespace icae
