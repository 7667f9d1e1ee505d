// Process-wide settings shared by the server binaries (and the benchmarks that stand in for them).
#ifndef ICAE_COMMON_BASE_PROCESS_SETUP_H_
#define ICAE_COMMON_BASE_PROCESS_SETUP_H_

namespace icae {

// Model steps allocate and free the same large activations again and again (a 512-token
// segment's attention scores in a 768-wide, 12-head model are 20 MB; a 2048-position prefill's
// are 200 MB per layer), and every decoder request allocates its KV cache. With glibc's defaults
// each such block is a fresh mmap, faulted in page by page and unmapped on free: about 180,000
// page faults per encoder segment, a third or more of the compute time (measured with
// icae-bench-encoder). One arena that keeps freed memory (no mmap below 1 GiB, no trimming)
// makes them near zero, at the price of a process that keeps its peak heap. Call first, before
// any thread exists.
void KeepFreedMemoryForReuse();

// OpenBLAS (Debian's libopenblas0-openmp: LibTorch's float32 GEMMs, i.e. float32 compression and
// prefill) picks its kernels by CPU model when it loads, and on a model it does not know falls
// back to its SSE3 "Prescott" kernels: Debian 12's 0.3.21 on Emerald Rapids (family 6, model 207)
// runs float32 GEMMs at a fifth of the AVX-512 kernels' speed (docs/benchmarks.md). The choice is
// made before main and cannot be changed in-process, so when OpenBLAS is loaded, OPENBLAS_CORETYPE
// is unset and it fell back to kernels older than what the CPU's features allow (AVX-512 F/BW/VL/DQ:
// SkylakeX; AVX2 + FMA: Haswell), this re-executes the program once (same pid, arguments and
// environment) with OPENBLAS_CORETYPE naming them, and logs it to stderr. Only the generic
// fallbacks (Prescott, Core2, Nehalem, Sandybridge, ...) are replaced. Does nothing otherwise, or
// when the exec fails. Call first thing in main, before the program starts threads or opens files.
void UseBestBlasKernels(char** argv);
// What UseBestBlasKernels would set OPENBLAS_CORETYPE to for a library that chose `current`
// (OpenBLAS's openblas_get_corename()) on a CPU with these features; empty: keep it.
const char* BetterBlasCore(const char* current, bool avx512, bool avx2_fma);
// The same on this CPU.
const char* BetterBlasCoreHere(const char* current);
// The kernel set the loaded OpenBLAS runs (openblas_get_corename()), or null when LibTorch's BLAS
// is not OpenBLAS.
const char* LoadedOpenBlasCore();

}  // namespace icae

#endif  // ICAE_COMMON_BASE_PROCESS_SETUP_H_
