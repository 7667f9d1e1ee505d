#!/usr/bin/env bash
# make fuzz: builds the fuzz targets of tests/fuzz with clang-14, libFuzzer, ASan and UBSan (in
# build-fuzz/) and runs each for FUZZ_SECONDS (default 60) from its committed corpus, then prints
# a table: target, executions, exec/s, corpus size, new inputs, crashes.
#
#   tools/fuzz/run.sh [--merge] [TARGET...]     (default: every target)
#   tools/fuzz/run.sh --seed                    (rewrites the seed corpora; needs `make build`)
#
# --merge adds the inputs that reached new coverage to tests/fuzz/corpus/<target>/ (commit them:
# `make test` replays that corpus). Crash inputs are kept under build-fuzz/findings/ and the
# script exits 1 when there is any.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
CORPUS="$ROOT/tests/fuzz/corpus"
ALL=(fuzz_tensor_codec fuzz_safetensors fuzz_tokenizer fuzz_compress_request fuzz_generate_request)

merge=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --merge) merge=1 ;;
    --seed)
      "${ICAE_BUILD_DIR:-$ROOT/build}/bin/icae_fuzz_seeds" "$CORPUS" "$ROOT/models/demo"
      exit 0 ;;
    fuzz_*) targets+=("$arg") ;;
    *) echo "usage: $0 [--merge] [--seed] [fuzz_TARGET...]" >&2; exit 2 ;;
  esac
done
(( ${#targets[@]} )) || targets=("${ALL[@]}")

ICAE_SETUP_FUZZ=1 ICAE_SETUP_DEPLOY=0 tools/setup.sh
if [[ ! -f "$BUILD/build.ninja" ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DICAE_FUZZ=ON -DICAE_TEST_SUBDIRS=fuzz
fi
cmake --build "$BUILD" -j "${JOBS:-2}" --target "${targets[@]}"

findings="$BUILD/findings"
mkdir -p "$findings"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rows=()
crashed=0
for t in "${targets[@]}"; do
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  log="$BUILD/$t.log"
  before=$(find "$CORPUS/$t" -type f | wc -l)
  set +e
  "$BUILD/bin/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -max_len=65536 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$findings/$t-" "$work" "$CORPUS/$t" \
    > "$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  found=$(find "$findings" -name "$t-*" -type f | wc -l)
  new=$(find "$work" -type f | wc -l)
  if (( merge )); then
    "$BUILD/bin/$t" -merge=1 -rss_limit_mb=4096 -max_len=65536 "$CORPUS/$t" "$work" \
      >> "$log" 2>&1
  fi
  after=$(find "$CORPUS/$t" -type f | wc -l)
  (( rc == 0 && found == 0 )) || crashed=1
  rows+=("$(printf '| %s | %s | %s | %s -> %s | %s | %s (rc %s) |' "$t" "$execs" "$rate" \
    "$before" "$after" "$new" "$found" "$rc")")
done
echo
echo "fuzzing, ${SECONDS_PER_TARGET} s per target (clang-14 libFuzzer + ASan + UBSan):"
echo "| target | executions | exec/s | committed corpus | inputs found this run | crashes |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "(logs: $BUILD/<target>.log; crash inputs: $findings/)"
exit "$crashed"
