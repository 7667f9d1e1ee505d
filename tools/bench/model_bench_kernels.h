// icae-bench-model's kernel phases (--phases products, elementwise): the project's CPU kernels
// and the ATen calls they replace on the model's shapes, in the same run; and the timing helper
// every phase of the bench uses.
#ifndef ICAE_TOOLS_BENCH_MODEL_BENCH_KERNELS_H_
#define ICAE_TOOLS_BENCH_MODEL_BENCH_KERNELS_H_

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "nlohmann/json.hpp"

namespace icae {

// Waits for the device's queued work (a CUDA copy to the host synchronises the stream); a no-op
// on the CPU.
inline void Sync(const at::Device& device) {
  if (!device.is_cpu()) (void)at::empty({1}, at::TensorOptions().device(device)).cpu();
}

// Best (minimum) wall time in seconds of `repeats` runs of `fn` on `device`, after one warm-up.
template <typename Fn>
double BestOf(int repeats, const at::Device& device, Fn&& fn) {
  fn();
  Sync(device);
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    Sync(device);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// One layer's four products (qkv, o, gate+up, down) at decode-sized row counts (1..16): the
// small-batch kernel (weights read once for all rows) and ATen's GEMM, milliseconds for the four
// and GFLOP/s, printed and added to `report` under `dtype_name`.
void MeasureProducts(const ModelConfig& config, at::ScalarType dtype, const std::string& dtype_name,
                     const at::Device& device, int repeats, nlohmann::json& report);

// For each row count: residual add + RMSNorm, RoPE on q and k, SiLU x up on the model's shapes
// (microseconds, best of `repeats`), the kernel's and ATen's, printed and added to `report`
// under `dtype_name`. CPU only (the kernels are CPU kernels).
void MeasureElementwise(const ModelConfig& config, at::ScalarType dtype,
                        const std::string& dtype_name, const std::vector<int64_t>& row_counts,
                        int repeats, nlohmann::json& report);

}  // namespace icae

#endif  // ICAE_TOOLS_BENCH_MODEL_BENCH_KERNELS_H_
