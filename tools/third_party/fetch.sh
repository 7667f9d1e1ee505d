#!/usr/bin/env bash
# Fetches the source trees a model-only build (-DICAE_MODEL_ONLY=ON) needs on a machine without
# Debian's packages (a GPU machine with only a CUDA LibTorch), from Debian's source packages, so
# that they can travel with the working tree:
#   tools/third_party/fetch.sh [OUT]     (default OUT: .deps/third_party)
# OUT/abseil, OUT/googletest and OUT/nlohmann_json (headers only), about 20 MB in all; then
#   cmake -DICAE_MODEL_ONLY=ON -DICAE_THIRD_PARTY_DIR=OUT ...
# Versions are the ones Debian 12 builds the system packages from, so the model-only build
# compiles against the same abseil, GoogleTest and JSON as the full one. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/.deps/third_party}
# shellcheck source=tools/lib/debian_source.sh
source "$root/tools/lib/debian_source.sh"
if [[ -f "$out/abseil/CMakeLists.txt" && -f "$out/googletest/CMakeLists.txt" &&
      -f "$out/nlohmann_json/include/nlohmann/json.hpp" ]]; then
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/icae-third-party.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

tree=$(debian_source abseil "$work" 20220623.1-1+deb12u2)
rm -rf "$out/abseil" && mv "$tree" "$out/abseil" && rm -rf "$out/abseil/debian"

tree=$(debian_source googletest "$work" 1.12.1-0.2)
rm -rf "$out/googletest" && mv "$tree" "$out/googletest"
rm -rf "$out/googletest/debian" "$out/googletest/docs" "$out/googletest/ci"

# nlohmann-json is header-only: the single include tree and its licence are all the build reads.
tree=$(debian_source nlohmann-json3 "$work" 3.11.2-2)
rm -rf "$out/nlohmann_json" && mkdir -p "$out/nlohmann_json/include"
cp -r "$tree/single_include/nlohmann" "$out/nlohmann_json/include/"
cp "$tree/LICENSE.MIT" "$out/nlohmann_json/"
du -sh "$out" >&2
