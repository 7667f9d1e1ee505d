#!/usr/bin/env bash
# The one GPU check (docs/gpu.md): on a machine with a CUDA LibTorch (PyTorch's wheel), CMake and
# ninja, and nothing else installed, builds the model-only tree, runs the golden and model tests
# on the device and the model benchmark, and writes everything under one folder:
#   tools/gpu/check.sh [--device cuda|cpu] [--out DIR] [--quick]
#   OUT/summary.json  what ran, how long, pass/fail counts, the benchmark figures
#   OUT/check.log     the whole log;  OUT/bench.json  icae-bench-model's figures
# --device cpu is the dry run on any machine (CI runs it with --quick). Third-party sources come
# from .deps/third_party (tools/third_party/fetch.sh, run beforehand where the network is).
# LibTorch is found through $TORCH_PREFIX, else `python3 -c 'import torch'`, else the system.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
device=cuda
out="$root/out/gpu-check"
quick=0
while (( $# )); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: $0 [--device cuda|cpu] [--out DIR] [--quick]" >&2; exit 2 ;;
  esac
done
third_party=${ICAE_THIRD_PARTY_DIR:-${ICAE_DEPS_DIR:-$root/.deps}/third_party}
build=${ICAE_GPU_BUILD_DIR:-$root/build-model-only}
jobs=${JOBS:-$(nproc)}
mkdir -p "$out"
log="$out/check.log"
: > "$log"
start=$(date +%s)
say() { echo "[gpu-check] $*" | tee -a "$log" >&2; }
elapsed() { echo $(( $(date +%s) - start )); }

# Each step: name, then the command; its output goes to the log, its status and time to the summary.
declare -a steps=()
run_step() {
  local name=$1
  shift
  local t0
  t0=$(date +%s)
  say "step $name: $*"
  "$@" >> "$log" 2>&1
  local rc=$?
  steps+=("{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}")
  say "step $name: rc $rc ($(( $(date +%s) - t0 )) s)"
  return $rc
}

finish() {
  local status=$1
  local bench=null tests=null
  [[ -s "$out/bench.json" ]] && bench=$(cat "$out/bench.json")
  [[ -s "$out/tests.json" ]] && tests=$(cat "$out/tests.json")
  {
    echo "{"
    echo "  \"status\": \"$status\", \"device\": \"$device\", \"quick\": $quick,"
    echo "  \"seconds\": $(elapsed), \"host\": \"$(hostname)\", \"nproc\": $(nproc),"
    echo "  \"torch_prefix\": \"${torch_prefix:-}\","
    echo "  \"gpu\": \"$(command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -n 1)\","
    echo "  \"steps\": [$(IFS=,; echo "${steps[*]}")],"
    echo "  \"tests\": $tests,"
    echo "  \"bench\": $bench"
    echo "}"
  } > "$out/summary.json"
  say "done: $status in $(elapsed) s; summary in $out/summary.json"
  [[ $status == passed ]]
  exit $?
}

torch_prefix=${TORCH_PREFIX:-}
if [[ -z "$torch_prefix" ]] && command -v python3 > /dev/null; then
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
fi
say "device $device, LibTorch ${torch_prefix:-from the system}, third-party sources $third_party"
[[ -f "$third_party/abseil/CMakeLists.txt" ]] || {
  say "no third-party sources under $third_party: run tools/third_party/fetch.sh where Debian's archive is reachable"
  finish failed
}
configure=(cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DICAE_MODEL_ONLY=ON
  "-DICAE_THIRD_PARTY_DIR=$third_party")
[[ -n "$torch_prefix" ]] && configure+=("-DCMAKE_PREFIX_PATH=$torch_prefix")
run_step configure "${configure[@]}" || finish failed
run_step build cmake --build "$build" -j "$jobs" || finish failed

# Golden and model tests on the device (ICAE_TEST_DEVICE moves the golden tests there; the rest
# are device-independent and run on the CPU as in CI).
export ICAE_TEST_DEVICE=$device
run_step tests ctest --test-dir "$build" --output-on-failure -j "$jobs" --output-junit "$out/junit.xml"
tests_rc=$?
python3 - "$out/junit.xml" > "$out/tests.json" 2>> "$log" << 'PY' || echo null > "$out/tests.json"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
total = sum(1 for _ in root.iter("testcase"))
print(json.dumps({"total": total, "failed": len(failed), "failed_names": failed[:50]}))
PY

bench=(env "$build/bin/icae-bench-model" --device "$device" --json "$out/bench.json"
  --workdir "$build/bench-model" --threads "$(nproc)")
(( quick )) && bench+=(--repeats 1 --decode_steps 4 --context 64 --dtypes float32)
run_step bench "${bench[@]}"
bench_rc=$?
(( tests_rc == 0 && bench_rc == 0 )) && finish passed
finish failed
