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

}  // namespace icae

#endif  // ICAE_COMMON_BASE_PROCESS_SETUP_H_
