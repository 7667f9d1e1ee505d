#!/usr/bin/env bash
# make demo: starts the encoder and the decoder with the demo model on loopback, waits for them to
# be healthy, then `icae demo` compresses a held-out document through the encoder, reconstructs it
# through the decoder (BLEU), and continues it from its slots; finally prints the metrics URLs and
# stops both services cleanly.
#   tools/demo.sh [--keep] [--cross]
#     --keep (or ICAE_DEMO_KEEP=1): leave the services running.
#     --cross (or ICAE_DEMO_CROSS=PACKAGE): also serve the cross-model encoder (a small model +
#     projector, models/demo/cross-4x) and its decoder, and add its row to the side-by-side table.
#   make demo DEMO_FLAGS=--cross
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BIN=${BIN:-build/bin}
MODEL=${ICAE_DEMO_MODEL:-models/demo/base}
ADAPTER=${ICAE_DEMO_ADAPTER:-models/demo/icae}
# KV slots (500xCompressor), set side by side with the embedding slots; "" to skip.
KV_ADAPTER=${ICAE_DEMO_KV_ADAPTER-models/demo/kv-16x}
DOC=${ICAE_DEMO_DOC:-models/demo/heldout.txt}
KEEP=${ICAE_DEMO_KEEP:-0}
CROSS=${ICAE_DEMO_CROSS:-}
for arg in "$@"; do
  case $arg in
    --keep) KEEP=1 ;;
    --cross) CROSS=${CROSS:-models/demo/cross-4x} ;;
    *) echo "demo: unknown argument $arg (expected --keep or --cross)" >&2; exit 2 ;;
  esac
done

for f in "$BIN/icae-encoder" "$BIN/icae-decoder" "$BIN/icae" "$MODEL/config.json" "$DOC"; do
  [[ -e "$f" ]] || { echo "demo: missing $f (run make, or make demo-model)" >&2; exit 1; }
done

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/icae-demo.XXXXXX")
pids=()
stop_services() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop_services' EXIT
trap 'exit 130' INT TERM

# Starts one service on free loopback ports; sets $address and $metrics from its start-up lines.
start() {
  local name=$1 adapter=$2 tag=$3
  shift 3
  "$BIN/icae-$name" --model "$MODEL" --adapter "$adapter" --listen 127.0.0.1:0 \
    --metrics_listen 127.0.0.1:0 --threads 1 --drain_seconds 5 "$@" \
    > "$run_dir/$tag.out" 2> "$run_dir/$tag.log" &
  pids+=($!)
  for _ in $(seq 1 600); do
    address=$(sed -n 's/^listening on //p' "$run_dir/$tag.out")
    metrics=$(sed -n 's/^metrics on //p' "$run_dir/$tag.out")
    [[ -n "$address" && -n "$metrics" ]] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$run_dir/$tag.log" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: $name did not start; log: $run_dir/$tag.log" >&2
  return 1
}

start encoder "$ADAPTER" encoder
encoder=$address encoder_metrics=$metrics
start decoder "$ADAPTER" decoder
decoder=$address decoder_metrics=$metrics
"$BIN/icae" health --address "$encoder" --wait 120 > /dev/null
"$BIN/icae" health --address "$decoder" --wait 120 > /dev/null

"$BIN/icae" demo --encoder "$encoder" --decoder "$decoder" --model "$MODEL" --file "$DOC"

# One more encoder/decoder pair for `adapter` (an ICAE adapter or a cross-encoder package);
# prints its row of the side-by-side table.
row() {
  local adapter=$1 tag=$2
  start encoder "$adapter" "$tag-encoder"
  local row_encoder=$address
  start decoder "$adapter" "$tag-decoder"
  local row_decoder=$address
  "$BIN/icae" health --address "$row_encoder" --wait 120 > /dev/null
  "$BIN/icae" health --address "$row_decoder" --wait 120 > /dev/null
  "$BIN/icae" demo --row --encoder "$row_encoder" --decoder "$row_decoder" --model "$MODEL" \
    --file "$DOC"
}

if [[ -n "$KV_ADAPTER" || -n "$CROSS" ]]; then
  [[ -z "$KV_ADAPTER" || -e "$KV_ADAPTER/adapter.safetensors" ]] ||
    { echo "demo: missing $KV_ADAPTER" >&2; exit 1; }
  [[ -z "$CROSS" || -e "$CROSS/cross_encoder.json" ]] ||
    { echo "demo: missing $CROSS (a cross-encoder package)" >&2; exit 1; }
  echo
  echo "4. slot kinds side by side (the same document, reconstructed from its slots):"
  "$BIN/icae" demo --row --encoder "$encoder" --decoder "$decoder" --model "$MODEL" --file "$DOC"
  if [[ -n "$KV_ADAPTER" ]]; then row "$KV_ADAPTER" kv; fi
  if [[ -n "$CROSS" ]]; then row "$CROSS" cross; fi
fi

echo
echo "metrics: http://$encoder_metrics/metrics  http://$decoder_metrics/metrics"
echo "logs:    $run_dir/*.log"
if [[ "$KEEP" == "1" ]]; then
  trap - EXIT
  echo "services left running (pids ${pids[*]}): encoder $encoder, decoder $decoder"
  exit 0
fi
stop_services
trap - EXIT
echo "services stopped"
