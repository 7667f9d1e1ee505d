#include "tests/encoder_service/encoder_test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/io/mapped_file.h"
#include "common/io/safetensors.h"

namespace icae::testing {
namespace {

const std::string kTestdata = ICAE_TESTDATA;

absl::Status CopyFile(const std::string& from, const std::string& to) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(from));
  return WriteStringToFile(to, contents);
}

absl::Status Run(const std::string& command) {
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("command failed: ", command));
  }
  return absl::OkStatus();
}

// Varied English-like lines: enough distinct pairs for 384 BPE pieces.
std::string TrainingText() {
  static const char* const kWords[] = {
      "the",       "memory",      "slots",    "encoder",   "decoder",  "context",    "compress",
      "token",     "segment",     "batch",    "server",    "request",  "answer",     "question",
      "document",  "model",       "language", "vector",    "hidden",   "state",      "layer",
      "attention", "query",       "value",    "retrieval", "pipeline", "latency",    "cache",
      "deadline",  "queue",       "reply",    "health",    "metrics",  "prometheus", "kubernetes",
      "replica",   "autoencoder", "in",       "of",        "and",      "a",          "to",
      "is",        "with",        "for",      "on",        "by",       "from",       "that"};
  std::mt19937 rng(7);
  std::string text;
  for (int line = 0; line < 3000; ++line) {
    const int words = 4 + static_cast<int>(rng() % 12);
    for (int w = 0; w < words; ++w) {
      if (w > 0) text += ' ';
      text += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
    }
    if (line % 5 == 0) text += absl::StrCat(" ", rng() % 1000, ".");
    if (line % 7 == 0) text += " Caf\xc3\xa9, na\xc3\xafve!";
    text += '\n';
  }
  return text;
}

std::vector<int> IdsOf(const SafetensorsFile& file, const std::string& name) {
  std::vector<int> out;
  const TensorInfo* info = file.Find(name);
  if (info == nullptr || info->dtype != DType::kInt64) return out;
  absl::Span<const uint8_t> bytes = file.Bytes(*info);
  for (int64_t i = 0; i < info->numel; ++i) {
    int64_t v;
    std::memcpy(&v, bytes.data() + 8 * i, 8);
    out.push_back(static_cast<int>(v));
  }
  return out;
}

std::vector<float> FloatsOf(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo* info = file.Find(name);
  if (info == nullptr || info->dtype != DType::kFloat32) return {};
  absl::Span<const uint8_t> bytes = file.Bytes(*info);
  return FloatsFromF32(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float value;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    value =
        mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    value = std::ldexp(static_cast<float>(mantissa | 0x400), static_cast<int>(exponent) - 25);
  }
  return sign ? -value : value;
}

uint16_t FloatToHalf(float f) {
  // Exact reference by search: the nearest representable half (ties to even mantissa).
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00;
  uint16_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  // Binary search over the monotone positive halves 0..0x7c00 (inf).
  int lo = 0, hi = 0x7c00;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (HalfToFloat(static_cast<uint16_t>(mid)) < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (int c = std::max(0, lo - 1); c <= std::min(0x7c00, lo); ++c) {
    const double err = std::fabs(static_cast<double>(HalfToFloat(static_cast<uint16_t>(c))) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best_err = err;
      best = static_cast<uint16_t>(c);
    }
  }
  return sign | best;
}

}  // namespace

absl::StatusOr<ModelCopy> MakeModelCopy(const std::string& dir, bool tokenizer, bool config_fifo) {
  ModelCopy copy;
  copy.model_dir = dir + "/tiny-llama";
  const std::string adapter_dir = dir + "/tiny-icae";
  if (::mkdir(copy.model_dir.c_str(), 0755) != 0 || ::mkdir(adapter_dir.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("cannot create directories under ", dir));
  }
  for (const char* name : {"model.safetensors", "generation_config.json"}) {
    RETURN_IF_ERROR(CopyFile(kTestdata + "/tiny-llama/" + name, copy.model_dir + "/" + name));
  }
  if (config_fifo) {
    const std::string fifo = copy.model_dir + "/config.json";
    if (::mkfifo(fifo.c_str(), 0644) != 0) return absl::InternalError("mkfifo failed");
  } else {
    RETURN_IF_ERROR(
        CopyFile(kTestdata + "/tiny-llama/config.json", copy.model_dir + "/config.json"));
  }
  for (const char* name : {"adapter.safetensors", "adapter_config.json"}) {
    RETURN_IF_ERROR(CopyFile(kTestdata + "/tiny-icae/" + name, adapter_dir + "/" + name));
  }
  copy.adapter = adapter_dir + "/adapter.safetensors";
  if (tokenizer) {
    RETURN_IF_ERROR(WriteStringToFile(dir + "/train.txt", TrainingText()));
    RETURN_IF_ERROR(Run(absl::StrCat(
        "spm_train --input=", dir, "/train.txt --model_prefix=", dir,
        "/spm --vocab_size=384 --model_type=bpe --byte_fallback=true --unk_id=0 --bos_id=1"
        " --eos_id=2 --pad_id=-1 --character_coverage=1.0 > ",
        dir, "/spm_train.log 2>&1")));
    RETURN_IF_ERROR(CopyFile(dir + "/spm.model", copy.model_dir + "/tokenizer.model"));
  }
  return copy;
}

FifoFeeder::FifoFeeder(std::string path, std::string contents)
    : path_(std::move(path)), contents_(std::move(contents)) {
  thread_ = std::thread([this] {
    const int fd = ::open(path_.c_str(), O_WRONLY);  // blocks until a reader opens the pipe
    if (fd < 0) return;
    if (!stop_.load()) {
      // Later opens must find a regular file: replace the pipe's directory entry first (the
      // reader's open pipe is unaffected), then feed the waiting reader.
      const std::string tmp = path_ + ".regular";
      if (WriteStringToFile(tmp, contents_).ok()) std::rename(tmp.c_str(), path_.c_str());
      size_t done = 0;
      while (done < contents_.size()) {
        const ssize_t n = ::write(fd, contents_.data() + done, contents_.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      served_.store(true);
    }
    ::close(fd);
  });
}

FifoFeeder::~FifoFeeder() {
  stop_.store(true);
  // If the writer still waits in open(), become the reader it waits for.
  const int fd = served_.load() ? -1 : ::open(path_.c_str(), O_RDONLY | O_NONBLOCK);
  thread_.join();
  if (fd >= 0) ::close(fd);
}

absl::StatusOr<GoldenSlots> ReadGolden() {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(kTestdata + "/tiny-icae/expected.safetensors"));
  GoldenSlots golden;
  golden.context_ids = IdsOf(*file, "context_ids");
  golden.slots = FloatsOf(*file, "slots");
  golden.context40_ids = IdsOf(*file, "context40_ids");
  golden.slots40 = FloatsOf(*file, "slots40");
  if (golden.context_ids.size() != 16 || golden.slots.size() != 4 * 64 ||
      golden.context40_ids.size() != 40 || golden.slots40.size() != 12 * 64) {
    return absl::DataLossError("unexpected golden tensors in tiny-icae/expected.safetensors");
  }
  return golden;
}

absl::StatusOr<std::vector<int>> SpmEncode(const std::string& model, const std::string& text) {
  char dir_template[] = "/tmp/spm_encode_XXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  if (dir == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string in = absl::StrCat(dir, "/in.txt"), out = absl::StrCat(dir, "/out.txt");
  RETURN_IF_ERROR(WriteStringToFile(in, text + "\n"));
  RETURN_IF_ERROR(
      Run(absl::StrCat("spm_encode --model=", model, " --output_format=id < ", in, " > ", out)));
  ASSIGN_OR_RETURN(std::string ids_text, ReadFileToString(out));
  std::vector<int> ids;
  for (absl::string_view piece :
       absl::StrSplit(ids_text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    int id;
    if (!absl::SimpleAtoi(piece, &id)) return absl::DataLossError(ids_text);
    ids.push_back(id);
  }
  std::remove(in.c_str());
  std::remove(out.c_str());
  ::rmdir(dir);
  return ids;
}

std::vector<float> FloatsFromF32(const std::string& bytes) {
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

std::vector<float> FloatsFromBF16(const std::string& bytes) {
  std::vector<float> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

std::vector<float> FloatsFromF16(const std::string& bytes) {
  std::vector<float> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    out[i] = HalfToFloat(h);
  }
  return out;
}

std::string ToBF16Bytes(const std::vector<float>& values) {
  std::string out(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    // Round to nearest even on the 16 dropped bits (values here are finite).
    const uint32_t rounded = bits + 0x7fff + ((bits >> 16) & 1);
    const uint16_t h = static_cast<uint16_t>(rounded >> 16);
    std::memcpy(&out[2 * i], &h, 2);
  }
  return out;
}

std::string ToF16Bytes(const std::vector<float>& values) {
  std::string out(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = FloatToHalf(values[i]);
    std::memcpy(&out[2 * i], &h, 2);
  }
  return out;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return worst;
}

std::vector<int> RandomIds(int count, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int> ids(count);
  for (int& id : ids) id = 3 + static_cast<int>(rng() % static_cast<unsigned>(vocab - 3));
  return ids;
}

}  // namespace icae::testing
