#!/usr/bin/env bash
# `make image`: builds the CPU runtime image of the encoder and decoder on this machine, without a
# Docker engine: Debian's buildah (daemonless, --isolation chroot, vfs storage) on a debian:12 base
# made here with debootstrap (no registry is reachable), holding the binaries `make` built. It is
# the runtime stage of deploy/docker/cpu.Dockerfile (same packages from stage.sh, same user, paths
# and entrypoints); the Dockerfile's build stage is replaced by the host's own build, which is the
# same `make build` on the same Debian 12.
#
#   deploy/image/build_cpu_image.sh [TAG]        (default icae/cpu:<version>-dev)
#
# Prints the image id. The base rootfs is cached under .cache/image/ (one debootstrap, ~30 s).
# Needs root (debootstrap, buildah's chroot isolation) and the Debian archive.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="${BUILD_DIR:-build}/bin"
TAG="${1:-icae/cpu:0.1.0-dev}"
CACHE="$ROOT/.cache/image"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
log() { echo "[image] $*" >&2; }

for tool in buildah debootstrap; do
  command -v "$tool" > /dev/null || { log "$tool is not installed (tools/setup.sh with ICAE_SETUP_IMAGE=1)"; exit 1; }
done
for b in icae-encoder icae-decoder; do
  [[ -x "$BIN/$b" ]] || { log "$BIN/$b not built: run make first"; exit 1; }
done

# 1. debian:12 base, made with debootstrap and imported (cached).
if ! buildah inspect --type image localhost/icae-debian:12 > /dev/null 2>&1; then
  if [[ ! -s "$CACHE/rootfs.tar" ]]; then
    log "debootstrap bookworm (minbase) -> $CACHE/rootfs.tar"
    rm -rf "$CACHE/rootfs"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs" http://deb.debian.org/debian \
      > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    tar -C "$CACHE/rootfs" -cf "$CACHE/rootfs.tar" .
    rm -rf "$CACHE/rootfs"
  fi
  base=$(buildah from scratch)
  buildah add "$base" "$CACHE/rootfs.tar" / > /dev/null
  buildah commit -q "$base" localhost/icae-debian:12 > /dev/null
  buildah rm "$base" > /dev/null
fi

# 2. The binaries and the Debian packages they link (as the Dockerfile's build stage stages them).
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
deploy/docker/stage.sh "$stage" "$BIN/icae-encoder" "$BIN/icae-decoder" > /dev/null
[[ ! -s "$stage/foreign-libraries.txt" ]] || { log "libraries from outside Debian:"; cat "$stage/foreign-libraries.txt" >&2; exit 1; }

# 3. The runtime stage.
ctr=$(buildah from localhost/icae-debian:12)
cleanup() { buildah rm "$ctr" > /dev/null 2>&1 || true; rm -rf "$stage"; }
trap cleanup EXIT
buildah copy "$ctr" "$stage/runtime-packages.txt" /tmp/runtime-packages.txt > /dev/null
buildah run --network host "$ctr" -- sh -ec '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  xargs -a /tmp/runtime-packages.txt apt-get install -y -qq --no-install-recommends libopenblas0-openmp > /dev/null
  rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
  groupadd --system --gid 10001 icae
  useradd --system --uid 10001 --gid icae --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin icae'
buildah copy "$ctr" "$stage/opt/icae" /opt/icae > /dev/null
buildah config --user 10001:10001 --workingdir /tmp --volume /models --port 50051 --port 50052 \
  --port 9091 --port 9092 --entrypoint '["/opt/icae/bin/icae-encoder"]' \
  --cmd '--model=/models/demo/base --adapter=/models/demo/icae --listen=0.0.0.0:50051 --metrics_listen=0.0.0.0:9091' \
  --label org.opencontainers.image.title=icae-cpu "$ctr"
buildah commit -q "$ctr" "$TAG"
