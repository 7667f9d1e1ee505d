#include "common/codec/int8_rows.h"

#include <cmath>
#include <limits>

namespace icae {

void QuantizeRowsInt8(const float* x, int64_t rows, int64_t width, int8_t* q, float* scales) {
  constexpr int kLanes = 16;
  // Adding then subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest integer,
  // ties to even (what std::nearbyint does), in a form the compiler vectorizes.
  constexpr float kRound = 12582912.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * width;
    int8_t* out = q + r * width;
    // max|x| in kLanes independent lanes (vectorizable), and x * 0, which stays 0 unless some
    // element is an infinity or a NaN.
    float lane_max[kLanes] = {};
    float lane_probe[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= width; c += kLanes) {
      for (int k = 0; k < kLanes; ++k) {
        const float a = std::fabs(row[c + k]);
        lane_max[k] = a > lane_max[k] ? a : lane_max[k];
        lane_probe[k] += row[c + k] * 0.0f;
      }
    }
    float amax = 0.0f, probe = 0.0f;
    for (; c < width; ++c) {
      const float a = std::fabs(row[c]);
      amax = a > amax ? a : amax;
      probe += row[c] * 0.0f;
    }
    for (int k = 0; k < kLanes; ++k) {
      amax = lane_max[k] > amax ? lane_max[k] : amax;
      probe += lane_probe[k];
    }
    if (probe != 0.0f) {  // NaN (from an inf or a NaN) compares unequal
      scales[r] = std::numeric_limits<float>::quiet_NaN();
      for (int64_t i = 0; i < width; ++i) out[i] = 0;
      continue;
    }
    const float scale = amax / 127.0f;
    scales[r] = scale;
    const float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
    for (int64_t i = 0; i < width; ++i) {
      float v = row[i] * inverse;
      v = v > 127.0f ? 127.0f : v;
      v = v < -127.0f ? -127.0f : v;
      out[i] = static_cast<int8_t>(static_cast<int32_t>((v + kRound) - kRound));
    }
  }
}

bool DequantizeRowsInt8(const int8_t* q, const float* scales, int64_t rows, int64_t width,
                        float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = scales[r];
    const int8_t* in = q + r * width;
    float* o = out + r * width;
    int bad = 0;
    for (int64_t c = 0; c < width; ++c) {
      bad |= in[c] == -128;
      o[c] = static_cast<float>(in[c]) * scale;
    }
    if (bad != 0) return false;
  }
  return true;
}

}  // namespace icae
