// icae-bench-codec: throughput of the tensor codec (at::Tensor <-> icae.v1.Tensor) on one large
// float32 tensor, printed next to plain memcpy of the same bytes measured in the same run.
//
//   icae-bench-codec [--mib 64] [--reps 15] [--threads 1]
//
// The operations are interleaved round by round (so that memory-bandwidth drift hits all of them
// alike) and each row reports the median over the rounds. GB/s is bytes read (10^9 per second);
// "vs memcpy" divides a row's GB/s by the warm memcpy's.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/base/flags.h"
#include "common/codec/tensor_codec.h"
#include "icae/v1/tensor.pb.h"

namespace icae {
namespace {

struct Op {
  std::string name;
  size_t in_bytes;   // Bytes read: the source tensor or the wire message's data.
  size_t out_bytes;  // Bytes written.
  std::function<void()> run;
  std::vector<double> seconds;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void Check(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "icae-bench-codec: %s\n", status.ToString().c_str());
    std::exit(1);
  }
}

int Main(int argc, char** argv) {
  int mib = 64;
  int reps = 15;
  int threads = 1;
  FlagSet flags("icae-bench-codec [--mib N] [--reps N] [--threads N]");
  flags.Int("mib", &mib, "size of the float32 tensor in MiB");
  flags.Int("reps", &reps, "rounds; each row is the median over them");
  flags.Int("threads", &threads, "LibTorch intra-op threads (used by dtype conversion)");
  ParseFlagsOrExit(flags, argc, argv);
  if (mib < 1 || reps < 1 || threads < 1) {
    std::fprintf(stderr, "icae-bench-codec: --mib, --reps and --threads must be >= 1\n");
    return 2;
  }
  at::set_num_threads(threads);

  const int64_t numel = int64_t{mib} * 1024 * 1024 / 4;
  const size_t f32_bytes = static_cast<size_t>(numel) * 4;
  const size_t bf16_bytes = static_cast<size_t>(numel) * 2;
  at::Tensor source = at::randn({numel / 4096, 4096}, at::kFloat);  // [rows, 4096]

  // Encoded messages the decode rows read (made once, outside the timing).
  v1::Tensor f32_wire, bf16_wire, int8_wire;
  Check(EncodeTensor(source, v1::FLOAT32, &f32_wire));
  Check(EncodeTensor(source, v1::BFLOAT16, &bf16_wire));
  Check(EncodeTensor(source, v1::INT8, &int8_wire));
  const size_t int8_bytes = static_cast<size_t>(numel) + static_cast<size_t>(numel / 4096) * 4;
  // The encoder service's path: the executor writes each span's slots once, converted, into a
  // buffer it owns (WriteWireElements), and the response sends that buffer by reference.
  std::string span_buffer(f32_bytes, '\0');
  std::vector<float> span_scales(static_cast<size_t>(numel / 4096));
  const int64_t limit = numel;

  // memcpy baselines: into a buffer that is already mapped (warm), and into a fresh allocation
  // of the same size (what a codec that returns new memory pays for page faults).
  std::unique_ptr<char[]> warm(new char[f32_bytes]);
  std::memset(warm.get(), 1, f32_bytes);
  const char* src = static_cast<const char*>(source.data_ptr());
  volatile char sink = 0;

  std::vector<Op> ops;
  const auto add = [&ops](std::string name, size_t in, size_t out, std::function<void()> run) {
    ops.push_back(Op{std::move(name), in, out, std::move(run), {}});
  };
  add("memcpy (warm destination)", f32_bytes, f32_bytes, [&] {
    std::memcpy(warm.get(), src, f32_bytes);
    sink = sink + warm[f32_bytes - 1];
  });
  add("memcpy (fresh allocation)", f32_bytes, f32_bytes, [&] {
    std::unique_ptr<char[]> fresh(new char[f32_bytes]);
    std::memcpy(fresh.get(), src, f32_bytes);
    sink = sink + fresh[f32_bytes - 1];
  });
  add("encode float32 -> FLOAT32", f32_bytes, f32_bytes, [&] {
    v1::Tensor out;
    Check(EncodeTensor(source, v1::FLOAT32, &out));
    sink = sink + out.data().back();
  });
  add("decode FLOAT32 -> float32", f32_bytes, f32_bytes, [&] {
    auto t = DecodeTensor(f32_wire, limit);
    Check(t.status());
    sink = sink + static_cast<const char*>(t->data_ptr())[0];
  });
  add("encode float32 -> BFLOAT16", f32_bytes, bf16_bytes, [&] {
    v1::Tensor out;
    Check(EncodeTensor(source, v1::BFLOAT16, &out));
    sink = sink + out.data().back();
  });
  add("decode BFLOAT16 -> bfloat16", bf16_bytes, bf16_bytes, [&] {
    auto t = DecodeTensor(bf16_wire, limit);
    Check(t.status());
    sink = sink + static_cast<const char*>(t->data_ptr())[0];
  });
  add("service write -> FLOAT32", f32_bytes, f32_bytes, [&] {
    Check(WriteWireElements(source, DType::kFloat32, span_buffer.data(), nullptr));
    sink = sink + span_buffer.back();
  });
  add("service write -> BFLOAT16", f32_bytes, bf16_bytes, [&] {
    Check(WriteWireElements(source, DType::kBFloat16, span_buffer.data(), nullptr));
    sink = sink + span_buffer[bf16_bytes - 1];
  });
  add("service write -> INT8 (+scales)", f32_bytes, int8_bytes, [&] {
    Check(WriteWireElements(source, DType::kInt8, span_buffer.data(), span_scales.data()));
    sink = sink + span_buffer[0];
  });
  add("decode INT8 -> float32", int8_bytes, f32_bytes, [&] {
    auto t = DecodeTensor(int8_wire, limit);
    Check(t.status());
    sink = sink + static_cast<const char*>(t->data_ptr())[0];
  });
  add("at::Tensor::to(bfloat16) alone", f32_bytes, bf16_bytes, [&] {
    at::Tensor t = source.to(at::kBFloat16);
    sink = sink + static_cast<const char*>(t.data_ptr())[0];
  });

  for (Op& op : ops) op.run();  // Warm-up round.
  for (int r = 0; r < reps; ++r) {
    for (Op& op : ops) {
      const auto start = std::chrono::steady_clock::now();
      op.run();
      const auto stop = std::chrono::steady_clock::now();
      op.seconds.push_back(std::chrono::duration<double>(stop - start).count());
    }
  }

  const double baseline = ops.front().in_bytes / Median(ops.front().seconds);
  std::printf("tensor: float32 [%lld, 4096] = %d MiB; %d rounds (median); %d intra-op thread(s)\n",
              static_cast<long long>(numel / 4096), mib, reps, threads);
  std::printf("| %-31s | %7s | %7s | %8s | %6s | %9s |\n", "operation", "in MiB", "out MiB", "ms",
              "GB/s", "vs memcpy");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(33, '-').c_str(), std::string(9, '-').c_str(),
              std::string(9, '-').c_str(), std::string(10, '-').c_str(),
              std::string(8, '-').c_str(), std::string(11, '-').c_str());
  for (const Op& op : ops) {
    const double s = Median(op.seconds);
    std::printf("| %-31s | %7.1f | %7.1f | %8.2f | %6.2f | %8.2fx |\n", op.name.c_str(),
                op.in_bytes / 1048576.0, op.out_bytes / 1048576.0, s * 1e3, op.in_bytes / s / 1e9,
                op.in_bytes / s / baseline);
  }
  return 0;
}

}  // namespace
}  // namespace icae

int main(int argc, char** argv) { return icae::Main(argc, argv); }
