#include "common/base/flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/util/test_util.h"

namespace icae {
namespace {

using ::icae::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A flag set with one flag of every kind and non-trivial defaults.
struct Flags {
  std::string model = "default-model";
  int threads = 0;
  int64_t max_bytes = 67108864;
  double temperature = 0.5;
  bool verbose = false;
  bool cache = true;
  std::vector<std::string> slots;
  FlagSet set{"test --model DIR [options]"};

  Flags() {
    set.String("model", &model, "model directory");
    set.Int("threads", &threads, "intra-op threads");
    set.Int64("max_message_bytes", &max_bytes, "largest message");
    set.Double("temperature", &temperature, "sampling temperature");
    set.Bool("verbose", &verbose, "log more");
    set.Bool("cache", &cache, "use the cache");
    set.StringList("slots", &slots, "slot files");
  }
  absl::Status Parse(std::vector<std::string> args,
                     std::vector<std::string>* positional = nullptr) {
    return set.Parse(args, positional);
  }
};

TEST(FlagsTest, DefaultsStayWithoutArguments) {
  Flags f;
  ASSERT_OK(f.Parse({}));
  EXPECT_EQ(f.model, "default-model");
  EXPECT_EQ(f.max_bytes, 67108864);
  EXPECT_TRUE(f.cache);
  EXPECT_FALSE(f.set.IsSet("model"));
  EXPECT_FALSE(f.set.help_requested());
}

TEST(FlagsTest, ValueForms) {
  Flags f;
  ASSERT_OK(f.Parse({"--model=/m", "--threads", "4", "--max-message-bytes=1099511627776",
                     "--temperature", "-0.25"}));
  EXPECT_EQ(f.model, "/m");
  EXPECT_EQ(f.threads, 4);
  EXPECT_EQ(f.max_bytes, 1099511627776);
  EXPECT_DOUBLE_EQ(f.temperature, -0.25);
  EXPECT_TRUE(f.set.IsSet("model"));
  EXPECT_TRUE(f.set.IsSet("max-message-bytes"));  // Dashes and underscores are the same.
  EXPECT_TRUE(f.set.IsSet("max_message_bytes"));
  EXPECT_FALSE(f.set.IsSet("verbose"));
  // A single dash works too, an empty value after '=' is a value, and later flags win.
  Flags g;
  ASSERT_OK(g.Parse({"-threads=2", "--model=", "--threads=3"}));
  EXPECT_EQ(g.threads, 3);
  EXPECT_EQ(g.model, "");
  // A value may contain '=' and start with a single dash.
  Flags h;
  ASSERT_OK(h.Parse({"--model=a=b", "--threads", "-7"}));
  EXPECT_EQ(h.model, "a=b");
  EXPECT_EQ(h.threads, -7);
}

TEST(FlagsTest, BoolForms) {
  Flags f;
  ASSERT_OK(f.Parse({"--verbose", "--nocache"}));
  EXPECT_TRUE(f.verbose);
  EXPECT_FALSE(f.cache);
  EXPECT_TRUE(f.set.IsSet("cache"));
  for (const char* off : {"--cache=false", "--cache=0", "--no-cache", "--no_cache", "--nocache"}) {
    Flags g;
    ASSERT_OK(g.Parse({off})) << off;
    EXPECT_FALSE(g.cache) << off;
  }
  for (const char* on : {"--verbose=true", "--verbose=1", "--verbose=yes", "--verbose"}) {
    Flags g;
    ASSERT_OK(g.Parse({on})) << on;
    EXPECT_TRUE(g.verbose) << on;
  }
  // A bool flag does not consume the next argument.
  Flags g;
  std::vector<std::string> positional;
  ASSERT_OK(g.Parse({"--verbose", "false"}, &positional));
  EXPECT_TRUE(g.verbose);
  EXPECT_THAT(positional, ElementsAre("false"));
}

TEST(FlagsTest, ListFlags) {
  Flags f;
  std::vector<std::string> positional;
  ASSERT_OK(f.Parse({"--slots", "a.st", "b.st", "--threads", "2", "--slots", "c.st", "--", "d"},
                    &positional));
  EXPECT_THAT(f.slots, ElementsAre("a.st", "b.st", "c.st"));
  EXPECT_EQ(f.threads, 2);
  EXPECT_THAT(positional, ElementsAre("d"));
  Flags g;
  ASSERT_OK(g.Parse({"--slots=x", "--slots", "y"}));
  EXPECT_THAT(g.slots, ElementsAre("x", "y"));
  EXPECT_THAT(g.Parse({"--slots"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--slots needs a value")));
}

TEST(FlagsTest, Positionals) {
  Flags f;
  std::vector<std::string> positional;
  ASSERT_OK(f.Parse({"in.txt", "--threads=1", "-", "--", "--verbose", "-x"}, &positional));
  EXPECT_THAT(positional, ElementsAre("in.txt", "-", "--verbose", "-x"));
  EXPECT_FALSE(f.verbose);  // After "--" nothing is a flag.
  Flags g;
  EXPECT_THAT(g.Parse({"stray"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("unexpected argument 'stray'")));
}

TEST(FlagsTest, Errors) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  struct Case {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"--bogus=1"}, "unknown flag --bogus"},
      {{"--bogus"}, "unknown flag --bogus"},
      {{"--noverbose=true"}, "unknown flag --noverbose"},
      {{"--nomodel"}, "unknown flag --nomodel"},  // Only bool flags negate.
      {{"--threads"}, "--threads needs a value"},
      {{"--model", "--threads", "2"}, "--model needs a value"},
      {{"--threads=four"}, "--threads: 'four' is not an integer"},
      {{"--threads", "1.5"}, "--threads: '1.5' is not an integer"},
      {{"--threads=99999999999"}, "--threads: '99999999999' is not an integer"},
      {{"--max_message_bytes=1e3"}, "is not an integer"},
      {{"--temperature=hot"}, "--temperature: 'hot' is not a number"},
      {{"--verbose=maybe"}, "--verbose: 'maybe' is not true or false"},
  };
  for (const Case& c : cases) {
    Flags f;
    EXPECT_THAT(f.Parse(c.args), StatusIs(kInvalid, HasSubstr(c.message))) << c.args[0];
  }
}

TEST(FlagsTest, HelpUsageAndEffective) {
  for (const char* help : {"--help", "-h", "-help"}) {
    Flags f;
    ASSERT_OK(f.Parse({help}));
    EXPECT_TRUE(f.set.help_requested()) << help;
  }
  Flags f;
  const std::string usage = f.set.Usage();
  EXPECT_THAT(usage, HasSubstr("usage: test --model DIR [options]\n"));
  EXPECT_THAT(usage, HasSubstr("  --threads VALUE  intra-op threads (default: 0)\n"));
  EXPECT_THAT(usage, HasSubstr("  --verbose  log more (default: false)\n"));
  EXPECT_THAT(usage, HasSubstr("--model VALUE  model directory (default: default-model)"));
  EXPECT_THAT(usage, HasSubstr("  --slots VALUE  slot files\n"));  // Empty default is omitted.
  ASSERT_OK(f.Parse({"--threads=8", "--slots", "a", "b"}));
  const std::string effective = f.set.Effective();
  EXPECT_THAT(effective, HasSubstr("threads=8"));
  EXPECT_THAT(effective, HasSubstr("slots=a,b"));
  EXPECT_THAT(effective, HasSubstr("model=default-model"));
  // Usage keeps the defaults, not the parsed values.
  EXPECT_THAT(f.set.Usage(), HasSubstr("(default: 0)"));
}

TEST(FlagsTest, ArgvOverload) {
  Flags f;
  std::string a0 = "prog", a1 = "--threads", a2 = "5", a3 = "pos";
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data()};
  std::vector<std::string> positional;
  ASSERT_OK(f.set.Parse(4, argv, &positional));
  EXPECT_EQ(f.threads, 5);
  EXPECT_THAT(positional, ElementsAre("pos"));  // argv[0] is the program, not an argument.
}

// ParseFlagsOrExit runs in a child process: --help exits 0 with usage on stdout, an error exits 2
// with "<program>: <reason>" on stderr.
TEST(FlagsTest, ParseFlagsOrExit) {
  const auto run = [](std::vector<std::string> args, std::string* out, std::string* err) {
    int out_pipe[2], err_pipe[2];
    EXPECT_EQ(::pipe(out_pipe), 0);
    EXPECT_EQ(::pipe(err_pipe), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      Flags f;
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      ParseFlagsOrExit(f.set, static_cast<int>(argv.size()), argv.data());
      std::fflush(stdout);
      ::_exit(f.threads == 3 ? 42 : 43);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    const auto drain = [](int fd, std::string* text) {
      char buffer[4096];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) text->append(buffer, n);
      ::close(fd);
    };
    drain(out_pipe[0], out);
    drain(err_pipe[0], err);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out, err;
  EXPECT_EQ(run({"/usr/bin/icae-test", "--help"}, &out, &err), 0);
  EXPECT_THAT(out, HasSubstr("usage: test --model DIR"));
  out.clear(), err.clear();
  EXPECT_EQ(run({"/usr/bin/icae-test", "--threads=x"}, &out, &err), 2);
  EXPECT_EQ(err, "icae-test: --threads: 'x' is not an integer\n");
  out.clear(), err.clear();
  EXPECT_EQ(run({"icae-test", "--threads=3"}, &out, &err), 42);
  EXPECT_EQ(err, "");
}

TEST(FlagsTest, ParseIntList) {
  std::vector<int> out = {9};
  ASSERT_OK(ParseIntList("1, 2,-3", "--ids", &out));
  EXPECT_THAT(out, ElementsAre(1, 2, -3));
  ASSERT_OK(ParseIntList("", "--ids", &out));
  EXPECT_TRUE(out.empty());
  EXPECT_THAT(
      ParseIntList("1,x", "--ids", &out),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--ids: 'x' is not an integer")));
}

}  // namespace
}  // namespace icae
