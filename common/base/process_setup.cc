#include "common/base/process_setup.h"

#include <dlfcn.h>
#include <malloc.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace icae {
namespace {

// How capable an OpenBLAS kernel set is, by its core name: 3 AVX-512, 2 AVX2, 1 anything older
// (the generic fallbacks). Names as openblas_get_corename() spells them, case aside.
int BlasCoreLevel(const char* core) {
  for (const char* name : {"skylakex", "cooperlake", "sapphirerapids"}) {
    if (strcasecmp(core, name) == 0) return 3;
  }
  for (const char* name : {"haswell", "zen"}) {
    if (strcasecmp(core, name) == 0) return 2;
  }
  return 1;
}

}  // namespace

void KeepFreedMemoryForReuse() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

const char* BetterBlasCore(const char* current, bool avx512, bool avx2_fma) {
  // Only the generic fallbacks are replaced: a set OpenBLAS chose for this CPU family (Haswell on
  // an AVX-512 Zen, say) is its own judgement.
  const char* best = avx512 ? "SkylakeX" : avx2_fma ? "Haswell" : nullptr;
  if (best == nullptr || current == nullptr || BlasCoreLevel(current) > 1) return "";
  return best;
}

const char* BetterBlasCoreHere(const char* current) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return BetterBlasCore(current, avx512, avx2_fma);
}

const char* LoadedOpenBlasCore() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core_name != nullptr ? core_name() : nullptr;
}

void UseBestBlasKernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // Chosen already (or by us).
  const char* current = LoadedOpenBlasCore();
  if (current == nullptr) return;  // Another BLAS.
  const char* better = BetterBlasCoreHere(current);
  if (*better == '\0') return;
  std::fprintf(stderr, "OpenBLAS chose its %s kernels: restarting with OPENBLAS_CORETYPE=%s\n",
               current, better);
  std::fflush(stderr);
  setenv("OPENBLAS_CORETYPE", better, 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "restart failed (%s); going on with the %s kernels\n",
               std::strerror(errno), current);
}

}  // namespace icae
