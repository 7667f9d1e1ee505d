#!/usr/bin/env bash
# Decode speed next to llama.cpp on the same shapes, in one run, interleaved rounds, medians:
#   tools/bench/llamacpp_compare.sh KIT OUT_DIR
# KIT is a llama.cpp kit with baseline.sh (the one the machine image provides; a yardstick, never part
# of the project: nothing of it is built or linked here). Models: the random 134M Llama of
# icae-bench-model (depth 512) and the demo model (depth 128), float32 and bfloat16, batch 1 and 8.
# llama.cpp's figure is llama-batched-bench's S_TG (decode tokens/s at that depth, one run of 32
# steps); ours is icae-bench-model's decode tokens/s (project kernels, "native"), also one run of
# 32 steps (--repeats 1: the bench otherwise reports the best of several). Needs Debian's
# python3-torch, python3-numpy, python3-sentencepiece and python3-tqdm for the GGUF converter (not
# installed by setup: this comparison is run by hand, never by the tests). Run on an idle machine:
# llama.cpp's OpenMP threads spin, so any other load ruins both figures.
set -euo pipefail
kit=${1:?usage: llamacpp_compare.sh KIT OUT_DIR}
out=${2:?usage: llamacpp_compare.sh KIT OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${BUILD_DIR:-build}/bin
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
mkdir -p "$out"
kit=$(cd "$kit" && pwd)

# name|model dir|depth|converter extra flag
random_dir="$out/random134m"
if [[ ! -s "$random_dir/model.safetensors" ]]; then
  "$bin/icae-bench-model" --workdir "$random_dir" --dtypes float32 --repeats 1 --decode_steps 1 \
    --context 16 --paths native --phases decode > /dev/null
fi
models=("random134m|$random_dir|512|--dummy-vocab 32000" "demo|models/demo/base|128|")
for m in "${models[@]}"; do
  IFS='|' read -r name dir depth extra <<< "$m"
  # shellcheck disable=SC2086
  "$kit/baseline.sh" gguf "$dir" "$out/gguf-$name" $extra > /dev/null
done

results="$out/results.tsv"
echo -e "round\tmodel\tdtype\tbatch\tengine\ttokens_per_s" > "$results"
for round in $(seq 1 "$rounds"); do
  for m in "${models[@]}"; do
    IFS='|' read -r name dir depth extra <<< "$m"
    for dtype in float32 bfloat16; do
      t=f32
      [[ $dtype == bfloat16 ]] && t=bf16
      log="$out/llama-$name-$t-r$round.txt"
      "$kit/baseline.sh" batched -m "$out/gguf-$name/model-$t.gguf" -t "$threads" -c 4608 -b 2048 \
        -ub 512 -npp "$depth" -ntg 32 -npl 1,8 > "$log" 2>&1
      # Table rows: | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
      awk -F'|' -v r="$round" -v n="$name" -v d="$dtype" \
        '$2 ~ /^ *[0-9]+ *$/ {gsub(/ /, "", $4); gsub(/ /, "", $9); print r "\t" n "\t" d "\t" $4 "\tllama.cpp\t" $9}' \
        "$log" >> "$results"
      json="$out/ours-$name-$t-r$round.json"
      model_flags=()
      [[ $name == demo ]] && model_flags=(--model models/demo/base --adapter models/demo/icae)
      [[ $name == random134m ]] && model_flags=(--workdir "$random_dir" --model "$random_dir")
      "$bin/icae-bench-model" "${model_flags[@]}" --threads "$threads" --dtypes "$dtype" \
        --context "$depth" --decode_steps 32 --repeats 1 --paths native --phases decode \
        --json "$json" \
        > "$out/ours-$name-$t-r$round.txt" 2>&1
      python3 -c '
import json, sys
r, n, d = sys.argv[2:5]
for x in json.load(open(sys.argv[1]))["results"]:
    if x["phase"] == "decode":
        print("\t".join([r, n, d, str(x["batch"]), "ours", "%.2f" % x["tokens_per_s"]]))
' "$json" "$round" "$name" "$dtype" >> "$results"
    done
  done
done

python3 - "$results" << 'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
keys = sorted({(r["model"], r["dtype"], r["batch"]) for r in rows})
print(f"{'model':12} {'dtype':9} {'batch':>5} {'llama.cpp':>10} {'ours':>10} {'ratio':>7}   (decode tokens/s, median of rounds)")
for k in keys:
    med = {}
    for eng in ("llama.cpp", "ours"):
        v = [float(r["tokens_per_s"]) for r in rows if (r["model"], r["dtype"], r["batch"]) == k and r["engine"] == eng]
        med[eng] = statistics.median(v) if v else float("nan")
    print(f"{k[0]:12} {k[1]:9} {k[2]:>5} {med['llama.cpp']:10.1f} {med['ours']:10.1f} {med['ours'] / med['llama.cpp']:7.2f}")
PY
