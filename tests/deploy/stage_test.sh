#!/usr/bin/env bash
# Runs deploy/docker/stage.sh, the step both Dockerfiles use to stage the binaries and list the
# Debian packages of the runtime image, on binaries `make` built:
#   stage_test.sh BIN_DIR
# Uses icae-encoder and icae-decoder when they exist, else every ELF executable in BIN_DIR (they
# link the same libraries). Checks: the binaries are copied; the package list is non-empty, every
# package is a real installed one, and every library the binaries link directly is shipped by a
# listed package; nothing comes from outside Debian (the CPU image's assertion); a missing binary
# is an error.
set -euo pipefail
bin_dir="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
stage="$root/deploy/docker/stage.sh"

bins=()
for name in icae-encoder icae-decoder; do
  [[ -x "$bin_dir/$name" ]] && bins+=("$bin_dir/$name")
done
if (( ${#bins[@]} == 0 )); then
  for f in "$bin_dir"/*; do
    [[ -f "$f" && -x "$f" && "$(head -c 4 "$f")" == $'\x7fELF' ]] && bins+=("$f")
  done
fi
(( ${#bins[@]} )) || { echo "FAIL: no binaries in $bin_dir"; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$stage" "$tmp/out" "${bins[@]}"

fail=0
for b in "${bins[@]}"; do
  cmp -s "$b" "$tmp/out/opt/icae/bin/$(basename "$b")" || { echo "FAIL: $b not staged"; fail=1; }
done
packages="$tmp/out/runtime-packages.txt"
[[ -s "$packages" ]] || { echo "FAIL: empty package list"; exit 1; }
grep -qx libc6 "$packages" || { echo "FAIL: libc6 missing from $packages"; fail=1; }
: > "$tmp/files"
while read -r package; do
  if ! dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep -q "install ok installed"; then
    echo "FAIL: $package is not an installed Debian package"
    fail=1
    continue
  fi
  dpkg-query -L "$package" | sed 's|.*/||' >> "$tmp/files"
done < "$packages"
for b in "${bins[@]}"; do
  for lib in $(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    if ! grep -qxF "$lib" "$tmp/files"; then
      echo "FAIL: $(basename "$b") needs $lib, no listed package ships it"
      fail=1
    fi
  done
done
if [[ -s "$tmp/out/foreign-libraries.txt" ]]; then
  echo "FAIL: libraries from outside Debian:"; cat "$tmp/out/foreign-libraries.txt"; fail=1
fi
if "$stage" "$tmp/bad" "$bin_dir/no-such-binary" 2> /dev/null; then
  echo "FAIL: stage.sh accepted a missing binary"; fail=1
fi
echo "stage_test: ${#bins[@]} binaries, $(wc -l < "$packages") packages: $(tr '\n' ' ' < "$packages")"
exit "$fail"
