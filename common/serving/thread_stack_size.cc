// Lets civetweb (the HTTP server under prometheus-cpp's Exposer) start in a process that loads
// LibTorch. civetweb asks for 100 KiB thread stacks, but the static TLS of the ~350 shared
// libraries Debian's LibTorch brings is larger (about 115 KiB), so pthread_create refuses the
// attribute with EINVAL and /metrics never comes up ("null context when constructing
// CivetServer"). Defining pthread_attr_setstacksize in the executable interposes it for every
// library: requests below kMinStack are raised to it, then the C library's function runs.
// Part of the icae_server_process object library, so that the definition lands in each server
// executable (a static library's unreferenced object would be dropped by the linker).
#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

namespace {

constexpr size_t kMinStack = size_t{4} << 20;

using SetStackSize = int (*)(pthread_attr_t*, size_t);

SetStackSize RealSetStackSize() {
  static const SetStackSize real =
      reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real;
}

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  const SetStackSize real = RealSetStackSize();
  if (real == nullptr) return 0;  // keep the default stack size
  return real(attr, size < kMinStack ? kMinStack : size);
}
