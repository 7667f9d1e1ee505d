#!/usr/bin/env bash
# Opt-in check of the CPU image (ctest `image_cpu`, labels opt_in;image): builds it with
# deploy/image/build_cpu_image.sh, starts the encoder and the decoder from it (buildah run, host
# network, the demo model copied into each working container: bind mounts need a mount namespace
# that chroot isolation does not create here), then from the host checks grpc.health for both
# services and a Compress -> Generate round trip (the Python client's RAG example). Prints the
# time of each step.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="${BUILD_DIR:-build}/bin"
TAG=icae/cpu:0.1.0-dev
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
work=$(mktemp -d)
containers=()
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  pkill -f "^/opt/icae/bin/icae-(encoder|decoder) --model=/models/demo" 2> /dev/null || true
  for c in "${containers[@]}"; do buildah rm "$c" > /dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
t0=$SECONDS
step() { echo "[$((SECONDS - t0)) s] $*"; }

step "building the image"
deploy/image/build_cpu_image.sh "$TAG" > "$work/image-id"
step "image $(cat "$work/image-id" | cut -c1-12): $(buildah images --format '{{.Size}}' "$TAG" | head -1)"

start() {  # start NAME BINARY: runs BINARY from the image; its address in $work/NAME.addr
  local name=$1 binary=$2 c
  c=$(buildah from "$TAG")
  containers+=("$c")
  buildah copy --chown 10001:10001 "$c" models/demo /models/demo > /dev/null
  buildah run --network host "$c" -- "/opt/icae/bin/$binary" --model=/models/demo/base \
    --adapter=/models/demo/icae --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --threads=1 \
    > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
}
start encoder icae-encoder
start decoder icae-decoder
for name in encoder decoder; do
  for _ in $(seq 1 300); do
    grep -q "listening on" "$work/$name.out" 2> /dev/null && break
    sleep 0.1
  done
  addr=$(grep -o "listening on \S*" "$work/$name.out" | cut -d' ' -f3) ||
    { echo "FAIL: $name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  echo "$addr" > "$work/$name.addr"
done
E=$(cat "$work/encoder.addr") D=$(cat "$work/decoder.addr")
step "started from the image: encoder $E, decoder $D"
"$BIN/icae" health --address "$E" --service icae.v1.Encoder --wait 60
"$BIN/icae" health --address "$D" --service icae.v1.Decoder --wait 60
step "grpc.health: both SERVING"
PYTHONPATH=clients/python ICAE_PYTHON_STUBS="${BUILD_DIR:-build}/python" /usr/bin/python3 \
  clients/python/examples/rag.py --encoder "$E" --decoder "$D" --max-new-tokens 8 | tee "$work/rag.txt"
grep -q "Q:" "$work/rag.txt" || { echo "FAIL: no answer" >&2; exit 1; }
step "Compress -> Generate round trip against the image's services: ok"
