#!/usr/bin/env bash
# make demo: starts the encoder and the decoder with the demo model on loopback, waits for them to
# be healthy, then `icae demo` compresses a held-out document through the encoder, reconstructs it
# through the decoder (BLEU), and continues it from its slots; finally prints the metrics URLs and
# stops both services cleanly.
#   tools/demo.sh [--keep]     (--keep, or ICAE_DEMO_KEEP=1: leave the services running)
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
[[ "${1:-}" == "--keep" ]] && KEEP=1

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

if [[ -n "$KV_ADAPTER" ]]; then
  [[ -e "$KV_ADAPTER/adapter.safetensors" ]] || { echo "demo: missing $KV_ADAPTER" >&2; exit 1; }
  start encoder "$KV_ADAPTER" kv-encoder
  kv_encoder=$address
  start decoder "$KV_ADAPTER" kv-decoder
  kv_decoder=$address
  "$BIN/icae" health --address "$kv_encoder" --wait 120 > /dev/null
  "$BIN/icae" health --address "$kv_decoder" --wait 120 > /dev/null
  echo
  echo "4. slot kinds side by side (the same document, reconstructed from its slots):"
  "$BIN/icae" demo --row --encoder "$encoder" --decoder "$decoder" --model "$MODEL" --file "$DOC"
  "$BIN/icae" demo --row --encoder "$kv_encoder" --decoder "$kv_decoder" --model "$MODEL" \
    --file "$DOC"
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
