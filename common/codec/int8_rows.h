// Symmetric per-row int8 quantization of float32 rows (the wire's INT8, tensor_codec.h), as plain
// loops the compiler vectorizes (no LibTorch: one pass to find each row's max, one to write it).
#ifndef ICAE_COMMON_CODEC_INT8_ROWS_H_
#define ICAE_COMMON_CODEC_INT8_ROWS_H_

#include <cstdint>

namespace icae {

// x: [rows, width] float32 -> q [rows, width] in [-127, 127] and scales [rows] (max|x| / 127; 0
// for a row of zeros). A row holding a NaN or an infinity gets a NaN scale, which every decoder
// refuses, rather than plausible numbers.
void QuantizeRowsInt8(const float* x, int64_t rows, int64_t width, int8_t* q, float* scales);

// q [rows, width] and scales [rows] -> out [rows, width] = q * scale. False (out incomplete) when
// some q is -128. The caller checks the scales (finite, >= 0).
bool DequantizeRowsInt8(const int8_t* q, const float* scales, int64_t rows, int64_t width,
                        float* out);

}  // namespace icae

#endif  // ICAE_COMMON_CODEC_INT8_ROWS_H_
