#!/usr/bin/env bash
# One-command set-up for a fresh Debian 12 machine: installs the Debian packages the build needs and
# builds SentencePiece as a static library against the system protobuf (see README, "Set-up").
# Idempotent: every step checks whether it is already done. Safe under CI=true with no stdin.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="${ICAE_DEPS_DIR:-$ROOT/.deps}"
SPM_VERSION=0.1.97

PACKAGES=(
  build-essential cmake ninja-build pkg-config dpkg-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libtorch-dev nlohmann-json3-dev libopenblas0-openmp
  libgtest-dev libgmock-dev libbenchmark-dev
  sentencepiece openssl
  libhiredis-dev redis-server
)
# Extra packages for the deploy checks (Prometheus, promtool, kubectl kustomize, Python client),
# the Python tools and the interop test.
if [[ "${ICAE_SETUP_DEPLOY:-1}" == "1" ]]; then
  PACKAGES+=(prometheus python3 python3-grpcio python3-protobuf python3-grpc-tools python3-yaml
    python3-numpy python3-venv python3-pip python3-setuptools)
  # The ICAE v1 checkpoint converter (tools/convert) and the figures (tools/figures), and their tests.
  PACKAGES+=(python3-torch python3-matplotlib)
  # Any kubectl renders Kustomize; install Debian's only when none is on the machine.
  command -v kubectl > /dev/null || PACKAGES+=(kubernetes-client)
  # Node runs the grpc-js interop test; Debian's when the machine has none.
  command -v npm > /dev/null || PACKAGES+=(nodejs npm)
fi

# The image build (`make image`, deploy/image/): buildah and debootstrap.
if [[ "${ICAE_SETUP_IMAGE:-0}" == "1" ]]; then
  PACKAGES+=(buildah debootstrap)
fi
# The fuzzing build (tools/fuzz/run.sh, `make fuzz`): clang with libFuzzer.
if [[ "${ICAE_SETUP_FUZZ:-0}" == "1" ]]; then
  PACKAGES+=(clang-14 libfuzzer-14-dev)
fi

log() { echo "[setup] $*" >&2; }
# shellcheck source=tools/lib/debian_source.sh
source "$ROOT/tools/lib/debian_source.sh"

as_root() {
  if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo -n "$@"; fi
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if (( ${#missing[@]} == 0 )); then
    return
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" < /dev/null
}

# Debian's libsentencepiece.so bundles protobuf 3.14 and aborts processes that also load the system
# libprotobuf (gRPC, LibTorch). Build the same version from Debian's source package as a static
# library against the system protobuf instead.
build_sentencepiece() {
  local prefix="$DEPS/sentencepiece"
  if [[ -f "$prefix/lib/libsentencepiece.a" && -f "$prefix/include/sentencepiece_processor.h" ]]; then
    return
  fi
  log "building SentencePiece $SPM_VERSION (static, system protobuf)"
  local work="$DEPS/src"
  rm -rf "$work"
  local src
  src=$(debian_source sentencepiece "$work" "$SPM_VERSION-3")
  [[ -d "$src" ]] || { log "sentencepiece source not found"; exit 1; }
  # Debian disables the static library; bring it back. Use the system protobuf headers only.
  if [[ -f "$src/debian/patches/disable-static-library.patch" ]]; then
    (cd "$src" && patch -R -p1 -s < debian/patches/disable-static-library.patch)
  fi
  rm -rf "$src/third_party/protobuf-lite"
  sed -i 's|#include "third_party/protobuf-lite/google/protobuf/message_lite.h"|#include <google/protobuf/message_lite.h>|' "$src/src/init.h"
  cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPM_USE_BUILTIN_PROTOBUF=OFF \
    -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON > "$work/configure.log"
  ninja -C "$src/build" sentencepiece-static > "$work/build.log"
  mkdir -p "$prefix/lib" "$prefix/include"
  cp "$src/build/src/libsentencepiece.a" "$prefix/lib/"
  cp "$src/src/sentencepiece_processor.h" "$prefix/include/"
  rm -rf "$work"
}

# The npm packages of the grpc-js interop test (tests/clients/grpcjs/package-lock.json) into
# $DEPS/grpcjs/node_modules, outside git, like the corpus. Redone when the lock file changes.
install_grpcjs() {
  local src="$ROOT/tests/clients/grpcjs" dst="$DEPS/grpcjs"
  if cmp -s "$src/package-lock.json" "$dst/package-lock.json" 2>/dev/null &&
     [[ -d "$dst/node_modules/@grpc/grpc-js" ]]; then
    return
  fi
  log "installing the grpc-js interop packages (npm ci into $dst)"
  mkdir -p "$dst"
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error < /dev/null)
}

install_packages
build_sentencepiece
if [[ "${ICAE_SETUP_DEPLOY:-1}" == "1" ]]; then
  install_grpcjs
fi
# Source trees for the model-only build (the GPU path, tools/gpu/check.sh), which CI exercises.
"$ROOT/tools/third_party/fetch.sh" "$DEPS/third_party"
