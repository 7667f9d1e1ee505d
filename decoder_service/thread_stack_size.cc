// Works around civetweb (the HTTP server under prometheus-cpp's Exposer) failing to start in a
// process that loads LibTorch: civetweb gives its threads a fixed 100 KiB stack, but Debian's
// LibTorch brings ~350 shared libraries whose static TLS alone is larger, so pthread_create
// refuses the attribute with EINVAL ("Cannot create threads") and /metrics never comes up.
// Defining pthread_attr_setstacksize in the executable interposes it for every library: requests
// below kMinStack are raised to it, then the C library's own function runs.
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
  if (real == nullptr) return 0;  // Keep the default stack size.
  return real(attr, size < kMinStack ? kMinStack : size);
}
