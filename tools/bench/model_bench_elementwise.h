// icae-bench-model --phases elementwise: one layer's element-wise stages through the CPU kernels
// and through the ATen expressions they replace, in the same run.
#ifndef ICAE_TOOLS_BENCH_MODEL_BENCH_ELEMENTWISE_H_
#define ICAE_TOOLS_BENCH_MODEL_BENCH_ELEMENTWISE_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "nlohmann/json.hpp"

namespace icae {

// For each row count: residual add + RMSNorm, RoPE on q and k, SiLU x up on the model's shapes
// (microseconds, best of `repeats`), the kernel's and ATen's, printed and added to `report`.
void MeasureElementwise(const ModelConfig& config, at::ScalarType dtype,
                        const std::vector<int64_t>& row_counts, int repeats,
                        nlohmann::json& report);

}  // namespace icae

#endif  // ICAE_TOOLS_BENCH_MODEL_BENCH_ELEMENTWISE_H_
