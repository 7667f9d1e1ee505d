#!/usr/bin/env bash
# `make bench`: the benchmark set, each printing its baseline measured in the same run (GEMM,
# copy bandwidth, in-process vs over RPC). Run on an idle machine: 2 cores are easily disturbed.
#   tools/run_benchmarks.sh [OUT_DIR]        (default out/bench/<UTC time>)
# Environment: BUILD_DIR (build), THREADS (2), BENCH_SET (codec,model,demo,encoder,decoder);
# LLAMACPP_KIT=DIR (a llama.cpp kit with baseline.sh, as the machine image provides) also runs
# tools/bench/llamacpp_compare.sh, llama.cpp beside our decode on the same shapes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-2}
BENCH_SET=${BENCH_SET:-codec,model,demo,encoder,decoder}
out=${1:-out/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
bin=$BUILD_DIR/bin
echo "benchmarks -> $out (threads $THREADS; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg))"

run() {  # run NAME COMMAND...
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
}
has() { [[ ",$BENCH_SET," == *",$1,"* ]]; }

has codec && run codec "$bin/icae-bench-codec"
has model && run model "$bin/icae-bench-model" --threads "$THREADS" --json "$out/model.json"
has demo && run demo-model "$bin/icae-bench-model" --threads "$THREADS" --model models/demo/base \
  --adapter models/demo/icae --context 128 --decode_steps 128 --json "$out/demo-model.json"
has encoder && run encoder "$bin/icae-bench-encoder"
has decoder && run decoder "$bin/icae-bench-decoder" --json "$out/decoder.json"
if [[ -n "${LLAMACPP_KIT:-}" ]]; then
  run llamacpp "$root/tools/bench/llamacpp_compare.sh" "$LLAMACPP_KIT" "$out/llamacpp"
fi
echo "done: $out"
