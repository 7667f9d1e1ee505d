#include "tools/bench/model_bench_kernels.h"

#include <cstdio>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model/ops.h"

namespace icae {

void MeasureProducts(const ModelConfig& config, at::ScalarType dtype, const std::string& dtype_name,
                     const at::Device& device, int repeats, nlohmann::json& report) {
  const int64_t h = config.hidden_size, inter = config.intermediate_size;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {config.q_dim() + 2 * config.kv_dim(), h}, {h, config.q_dim()}, {2 * inter, h}, {h, inter}};
  const at::TensorOptions on = at::TensorOptions().dtype(dtype).device(device);
  std::vector<at::Tensor> weights;
  double flops_per_row = 0;
  for (auto [n, k] : shapes) {
    weights.push_back(at::randn({n, k}, on).mul_(0.02));
    flops_per_row += 2.0 * n * k;
  }
  std::printf("%-34s %10s %10s %10s %10s %8s\n", "one layer's products", "kernel ms", "GFLOP/s",
              "GEMM ms", "GFLOP/s", "ratio");
  for (int rows : {1, 4, 8, 9, 12, 16}) {
    std::vector<at::Tensor> inputs;
    for (auto [n, k] : shapes) inputs.push_back(at::randn({rows, k}, on));
    auto all = [&](bool kernel) {
      for (size_t i = 0; i < shapes.size(); ++i) {
        kernel ? SmallBatchLinear(inputs[i], weights[i]) : Linear(inputs[i], weights[i]);
      }
    };
    const double kernel_s = BestOf(repeats * 5, device, [&] { all(true); });
    const double gemm_s = BestOf(repeats * 5, device, [&] { all(false); });
    const double flops = flops_per_row * rows;
    std::printf("%-34s %10.3f %10.1f %10.3f %10.1f %7.2fx\n", absl::StrCat("rows ", rows).c_str(),
                1e3 * kernel_s, flops / kernel_s / 1e9, 1e3 * gemm_s, flops / gemm_s / 1e9,
                gemm_s / kernel_s);
    report["results"].push_back({{"phase", "products"},
                                 {"dtype", dtype_name},
                                 {"rows", rows},
                                 {"kernel_s", kernel_s},
                                 {"gemm_s", gemm_s}});
  }
}

void MeasureElementwise(const ModelConfig& config, at::ScalarType dtype,
                        const std::string& dtype_name, const std::vector<int64_t>& row_counts,
                        int repeats, nlohmann::json& report) {
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
      const double kernel_us = 1e6 * BestOf(repeats, at::Device(at::kCPU), stage.kernel);
      const double aten_us = 1e6 * BestOf(repeats, at::Device(at::kCPU), stage.aten);
      std::printf("%-34s %10.1f %10.1f %7.2fx\n",
                  absl::StrCat(stage.name, ", ", rows, " rows").c_str(), kernel_us, aten_us,
                  aten_us / kernel_us);
      report["results"].push_back({{"phase", "elementwise"},
                                   {"dtype", dtype_name},
                                   {"stage", stage.name},
                                   {"rows", rows},
                                   {"kernel_us", kernel_us},
                                   {"aten_us", aten_us}});
    }
  }
  SetCpuKernelsEnabled(enabled);
}

}  // namespace icae
