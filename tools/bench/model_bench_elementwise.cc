#include "tools/bench/model_bench_elementwise.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/model/ops.h"

namespace icae {
namespace {

// Best wall time of `repeats` calls of `fn` after one warm-up call, in microseconds.
double BestMicros(int repeats, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 1e6 * best;
}

}  // namespace

void MeasureElementwise(const ModelConfig& config, at::ScalarType dtype,
                        const std::vector<int64_t>& row_counts, int repeats,
                        nlohmann::json& report) {
  const int64_t h = config.hidden_size, d = config.head_dim, inter = config.intermediate_size;
  const int64_t heads = config.num_heads, kv_heads = config.num_kv_heads;
  const int64_t width = config.q_dim() + 2 * config.kv_dim();
  const at::TensorOptions on = at::TensorOptions().dtype(dtype);
  std::printf("%-34s %10s %10s %8s\n", "one layer's element-wise stages", "kernel us", "ATen us",
              "ratio");
  const bool enabled = CpuKernelsEnabled();
  for (int64_t rows : row_counts) {
    const at::Tensor x = at::randn({rows, h}, on), delta = at::randn({rows, h}, on);
    const at::Tensor weight = at::randn({h}, on);
    at::Tensor qkv = at::randn({rows, width}, on);
    const at::Tensor angles = at::randn({rows, d / 2}) * 5;
    const at::Tensor cos = at::cat({angles, angles}, -1).cos().to(dtype);
    const at::Tensor sin = at::cat({angles, angles}, -1).sin().to(dtype);
    const at::Tensor gate_up = at::randn({rows, 2 * inter}, on);
    at::Tensor residual = x.clone();
    struct Stage {
      const char* name;
      std::function<void()> kernel, aten;
    };
    const Stage stages[] = {
        {"residual add + RMSNorm",
         [&] { (void)AddRmsNorm(residual, delta, weight, config.rms_norm_eps); },
         [&] { (void)RmsNorm(x + delta, weight, config.rms_norm_eps); }},
        {"RoPE on q and k", [&] { ApplyRopeInPlace(qkv, heads + kv_heads, d, cos, sin); },
         [&] {
           const at::Tensor c = cos.view({1, rows, d}), s = sin.view({1, rows, d});
           (void)ApplyRope(qkv.narrow(-1, 0, heads * d).view({rows, heads, d}).transpose(0, 1), c,
                           s);
           (void)ApplyRope(
               qkv.narrow(-1, heads * d, kv_heads * d).view({rows, kv_heads, d}).transpose(0, 1), c,
               s);
         }},
        {"SiLU x up", [&] { (void)SiluMul(gate_up); },
         [&] {
           (void)(at::silu(gate_up.narrow(-1, 0, inter)) * gate_up.narrow(-1, inter, inter));
         }},
    };
    for (const Stage& stage : stages) {
      SetCpuKernelsEnabled(true);
      const double kernel_us = BestMicros(repeats, stage.kernel);
      const double aten_us = BestMicros(repeats, stage.aten);
      std::printf("%-34s %10.1f %10.1f %7.2fx\n",
                  absl::StrCat(stage.name, ", ", rows, " rows").c_str(), kernel_us, aten_us,
                  aten_us / kernel_us);
      report["results"].push_back({{"phase", "elementwise"},
                                   {"dtype", std::string(c10::toString(dtype))},
                                   {"stage", stage.name},
                                   {"rows", rows},
                                   {"kernel_us", kernel_us},
                                   {"aten_us", aten_us}});
    }
  }
  SetCpuKernelsEnabled(enabled);
}

}  // namespace icae
