// Bfloat16 conversion and the instruction-set dispatch shared by the CPU kernels.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "common/model/kernels/cpu_kernels.h"

namespace icae::kernels {

float Bf16ToFloat(bf16 x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

bf16 FloatToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if (std::isnan(x)) return static_cast<bf16>((bits >> 16) | 0x40);  // Quiet NaN.
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<bf16>(bits >> 16);
}

std::string IsaName(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Bf16:
      return "avx512-bf16";
  }
  return "?";
}

Isa DetectIsa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl")) {
      return Isa::kPortable;
    }
    return __builtin_cpu_supports("avx512bf16") ? Isa::kAvx512Bf16 : Isa::kAvx512;
  }();
  return isa;
}

namespace {
std::atomic<int> isa_cap{static_cast<int>(Isa::kAvx512Bf16)};
}  // namespace

Isa ActiveIsa() {
  return static_cast<Isa>(std::min(static_cast<int>(DetectIsa()), isa_cap.load()));
}

void SetIsaCap(std::optional<Isa> cap) {
  isa_cap.store(static_cast<int>(cap.value_or(Isa::kAvx512Bf16)));
}

}  // namespace icae::kernels
