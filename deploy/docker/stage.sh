#!/usr/bin/env bash
# Stages built binaries for a runtime image and lists the Debian packages they need.
#
#   deploy/docker/stage.sh DEST BINARY...
#
# Copies each BINARY to DEST/opt/icae/bin/ and writes DEST/runtime-packages.txt: one Debian package
# per line, the owners of the shared libraries the binaries link directly (readelf NEEDED, resolved
# by ldd). apt installs their dependencies. Libraries from outside Debian's packages are listed in
# DEST/foreign-libraries.txt; those not under /opt/libtorch (which the CUDA image copies whole), such
# as the CUDA toolkit's runtime, are copied to DEST/opt/icae/lib. The driver's libcuda is never
# copied: the NVIDIA container toolkit provides it. Fails if a library cannot be found at all. Both
# Dockerfiles run this, and a test runs it on the binaries `make` builds.
set -euo pipefail

(( $# >= 2 )) || { echo "usage: $0 DEST BINARY..." >&2; exit 2; }
dest="$1"
shift
mkdir -p "$dest/opt/icae/bin"
: > "$dest/runtime-packages.txt.tmp"
: > "$dest/foreign-libraries.txt.tmp"

# owner PATH: the Debian package that ships PATH (with or without the /usr prefix, merged /usr).
owner() {
  local path="$1" alt
  case "$path" in
    /usr/lib/*) alt="${path#/usr}" ;;
    /lib/*) alt="/usr$path" ;;
    *) alt="$path" ;;
  esac
  { dpkg-query -S "$path" 2> /dev/null || dpkg-query -S "$alt" 2> /dev/null; } |
    head -n 1 | cut -d: -f1
}

for binary in "$@"; do
  [[ -x "$binary" ]] || { echo "stage.sh: $binary is not an executable" >&2; exit 1; }
  cp "$binary" "$dest/opt/icae/bin/"
  resolved="$(ldd "$binary")"
  for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # "libfoo.so.1 => /path (addr)", or "/lib64/ld-linux-x86-64.so.2 (addr)" for the loader.
    path="$(awk -v lib="$lib" '
      ($1 == lib && $2 == "=>") { print $3; exit }
      (index($1, "/") == 1 && substr($1, length($1) - length(lib) + 1) == lib) { print $1; exit }
    ' <<< "$resolved")"
    if [[ -z "$path" || "$path" == "not" ]]; then
      echo "stage.sh: $binary needs $lib, which is not found" >&2
      exit 1
    fi
    package="$(owner "$path")"
    if [[ -n "$package" ]]; then
      echo "$package" >> "$dest/runtime-packages.txt.tmp"
    else
      echo "$path" >> "$dest/foreign-libraries.txt.tmp"
      case "$path" in
        /opt/libtorch/*|*/libcuda.so*) ;;
        *) mkdir -p "$dest/opt/icae/lib" && cp -L "$path" "$dest/opt/icae/lib/$lib" ;;
      esac
    fi
  done
done
sort -u "$dest/runtime-packages.txt.tmp" > "$dest/runtime-packages.txt"
sort -u "$dest/foreign-libraries.txt.tmp" > "$dest/foreign-libraries.txt"
rm -f "$dest/runtime-packages.txt.tmp" "$dest/foreign-libraries.txt.tmp"
echo "stage.sh: $# binaries, $(wc -l < "$dest/runtime-packages.txt") packages," \
  "$(wc -l < "$dest/foreign-libraries.txt") libraries from outside Debian"
