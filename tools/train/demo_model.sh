#!/usr/bin/env bash
# Reproduces models/demo/ from nothing: `make demo-model`, or one stage at a time:
#   tools/train/demo_model.sh corpus     # stage 1: corpus split + tokenizer   (minutes)
#   tools/train/demo_model.sh base       # stage 2: base LM          -> .cache/demo/base-lm
#   tools/train/demo_model.sh copy       # stage 3: copy training    -> .cache/demo/base-copy
#   tools/train/demo_model.sh icae       # stage 4: ICAE at 4x       -> models/demo/base + icae
#   tools/train/demo_model.sh icae16     # stage 5: ICAE at 16x      -> models/demo/icae-16x
#   tools/train/demo_model.sh kv16       # KV slots (500xCompressor) at 16x -> models/demo/kv-16x
#   tools/train/demo_model.sh kv16-more  # kv16 trained on (KV16_MORE steps) -> models/demo/kv-16x
#   tools/train/demo_model.sh curve      # kv16, then KV at 4x and 64x and embedding at 64x (the
#                                        # quality-vs-ratio curve; .cache/demo/curve/)
#   tools/train/demo_model.sh curve-eval # icae eval of the curve's adapters -> models/demo/eval-*
#   tools/train/demo_model.sh cross      # a cross-model encoder (1 layer + projector) at 4x and
#                                        # 16x -> models/demo/cross-4x, cross-16x (+ eval JSON)
#   tools/train/demo_model.sh probe      # the decoder's capacity (icae-train probe) at 4x and 16x
#   tools/train/demo_model.sh eval       # the held-out evaluation table (docs/training.md)
#   tools/train/demo_model.sh all        # stages 1-5 (each skipped when its output exists)
# Stage 4 is a rate curriculum (1x, 2x, then 4x over the same 32 memory rows) in which the base,
# which is ours, is co-trained with the encoder so that it learns to read slots, and then the ICAE
# stage proper: the co-trained base frozen, the adapter trained alone (docs/training.md).
# Every stage is resumable: rerunning the same command continues from the newest checkpoint
# (under .cache/demo/, kept out of git). Seeds and every flag are fixed here; changing one makes
# the trainer refuse an old checkpoint rather than mix two recipes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
BUILD_DIR=${BUILD_DIR:-build}
TRAIN=${TRAIN:-$BUILD_DIR/bin/icae-train}
ICAE=${ICAE:-$BUILD_DIR/bin/icae}
THREADS=${THREADS:-2}
corpus=.cache/demo/corpus
demo=models/demo
copy_base=.cache/demo/base-copy  # The copy-trained LM that stage 4 starts from.
cur=.cache/demo/curriculum       # Stage 4's intermediate adapters and bases.

stage_corpus() {
  tools/corpus/make_corpus.sh "$corpus" "$corpus/tokenizer.model"
}

stage_base() {
  [[ -s "$corpus/train.txt" ]] || stage_corpus
  # Half of the windows repeat their first half: the frozen decoder must copy from its context
  # to read slots, and repeated text teaches that far sooner than plain text. (This stage's
  # output was the committed base until 2026-12-04; stage 3 continues from it.)
  "$TRAIN" lm --train "$corpus/train.txt" --valid "$corpus/valid.txt" \
    --tokenizer "$corpus/tokenizer.model" --out .cache/demo/base-lm \
    --checkpoint-dir .cache/demo/base.ckpt \
    --hidden 256 --layers 6 --heads 4 --kv-heads 4 --seq-len 256 --max-positions 512 \
    --batch 16 --accum 1 --steps 2500 --lr 1e-3 --warmup 100 --min-lr-ratio 0.1 \
    --weight-decay 0.1 --beta2 0.95 --clip 2.0 --dtype bfloat16 --save-dtype bfloat16 \
    --repeat-prob 0.5 --seed 1234 --threads "$THREADS" --checkpoint-every 100 --eval-every 500 \
    --valid-windows 64
}

stage_copy() {
  [[ -s .cache/demo/base-lm/model.safetensors ]] || stage_base
  # Continued training where half of the windows carry one span copied again at a random length
  # and distance, and none repeats at a fixed offset: the base learns to copy by content at any
  # distance, which is how a frozen decoder reads slots (icae-train probe: optimised 4x slots
  # reach 98.5% teacher-forced / BLEU 0.70 on the stage-2 base, 100% / 1.00 on this one).
  "$TRAIN" lm --train "$corpus/train.txt" --valid "$corpus/valid.txt" \
    --tokenizer "$corpus/tokenizer.model" --init-model .cache/demo/base-lm --out "$copy_base" \
    --checkpoint-dir .cache/demo/base2.ckpt --seq-len 256 --batch 16 --steps 1200 --lr 5e-4 \
    --warmup 50 --min-lr-ratio 0.2 --weight-decay 0.1 --beta2 0.95 --clip 2.0 \
    --dtype bfloat16 --save-dtype bfloat16 --copy-prob 0.5 --seed 2026 --threads "$THREADS" \
    --checkpoint-every 100 --eval-every 200 --valid-windows 64 --log-every 20
}

# ICAE pretraining on the frozen base (the recipe of 2026-12-04, docs/training.md): memory tokens
# at the end of their chunk (uniform layout), LoRA on all seven projections, autoencoding only for
# the first two thirds, then ICAE's lm_ratio 0.5; cosine to 0.2x of the peak lr.
# One stage of ICAE pretraining: pretrain_stage OUT MODEL STEPS SEED [flags]. Autoencoding with
# a little continuation, constant lr, LoRA r 64 on all projections, memory tokens at uniform
# positions.
pretrain_stage() {
  local out=$1 model=$2 steps=$3 seed=$4
  shift 4
  [[ -s "$out/adapter.safetensors" ]] && return 0
  "$TRAIN" pretrain --model "$model" --train "$corpus/train.txt" --valid "$corpus/valid.txt" \
    --out "$out" --checkpoint-dir "$out.ckpt" --lora-r 64 --lora-alpha 128 --lora-targets all \
    --memory-positions uniform --batch 8 --accum 1 --steps "$steps" --lr 1e-3 --warmup 20 \
    --min-lr-ratio 1 --clip 2.0 --dtype bfloat16 --seed "$seed" --threads "$THREADS" \
    --checkpoint-every 100 --eval-every 100 --valid-samples 32 --log-every 50 "$@"
}

# Co-training flags: the base's weights train at a tenth of the lr, 20% of the samples are
# plain language modelling so that it stays an LM.
cotrain=(--train-base --text-lm-ratio 0.2 --base-lr-scale 0.1 --lm-ratio 0.1)

stage_icae() {
  [[ -s "$copy_base/model.safetensors" ]] || stage_copy
  # 1x then 2x on the frozen copy base: each slot first learns to carry one token.
  pretrain_stage "$cur/r1" "$copy_base" 400 11 --mem-size 32 --rate 1 --span-tokens 32 --lm-ratio 0 \
    --warmup 50
  pretrain_stage "$cur/r2" "$copy_base" 600 12 --init-adapter "$cur/r1" --rate 2 \
    --span-tokens 64 --lm-ratio 0
  # Co-training at 2x, then at 4x from the co-trained base (exported to <out>/base).
  pretrain_stage "$cur/c2" "$copy_base" 1000 22 --init-adapter "$cur/r2" --rate 2 \
    --span-tokens 64 "${cotrain[@]}"
  pretrain_stage "$cur/c4" "$cur/c2/base" 2000 23 --init-adapter "$cur/c2" \
    --rate 4 --span-tokens 128 "${cotrain[@]}"
  # ICAE proper: the co-trained base frozen, the adapter alone.
  pretrain_stage "$cur/icae" "$cur/c4/base" 400 24 --init-adapter "$cur/c4" --rate 4 \
    --span-tokens 128 --lm-ratio 0.2
  # Spans shorter than a segment (a short passage, every document's last segment): half the
  # samples compress a length drawn in [8, 128], the other half full segments so that the
  # full-length code keeps its gradient; a low constant lr (docs/training.md).
  local short=(--rate 4 --span-tokens 128 --min-span-tokens 8 --short-span-ratio 0.5
    --lm-ratio 0.2 --lr 2e-4)
  # (1000 more steps trade the 128-token BLEU for the short spans': 0.906 / 0.927 / 0.921 at
  # 128 / 64 / 16 tokens, docs/training.md.)
  pretrain_stage "$cur/short" "$cur/c4/base" 1500 61 --init-adapter "$cur/icae" "${short[@]}"
  rm -rf "$demo/base" "$demo/icae"
  mkdir -p "$demo/base" "$demo/icae"
  cp "$cur/c4/base/"* "$demo/base/"
  cp "$cur/short/adapter.safetensors" "$cur/short/adapter_config.json" "$demo/icae/"
  sed -i "s|\"base_model\": \"[^\"]*\"|\"base_model\": \"$demo/base\"|" "$demo/icae/adapter_config.json"
}

stage_icae16() {
  [[ -s "$demo/base/model.safetensors" ]] || stage_icae
  # The same curriculum over 8 memory rows on the committed (frozen) base: 1x, 4x, 16x.
  pretrain_stage "$cur/s1" "$demo/base" 400 31 --mem-size 8 --rate 1 --span-tokens 8 --lm-ratio 0
  pretrain_stage "$cur/s4" "$demo/base" 600 32 --init-adapter "$cur/s1" --rate 4 \
    --span-tokens 32 --lm-ratio 0
  pretrain_stage "$cur/s16" "$demo/base" "${S16_STEPS:-1000}" 33 --init-adapter "$cur/s4" \
    --rate 16 --span-tokens 128 --lm-ratio 0.2
  rm -rf "$demo/icae-16x"
  mkdir -p "$demo/icae-16x"
  cp "$cur/s16/adapter.safetensors" "$cur/s16/adapter_config.json" "$demo/icae-16x/"
  sed -i "s|\"base_model\": \"[^\"]*\"|\"base_model\": \"$demo/base\"|" "$demo/icae-16x/adapter_config.json"
}

# The quality-vs-ratio curve (docs/training.md): an adapter of slot kind $1 (embedding | kv) with
# $2 memory rows per 128-token segment, trained on the committed (frozen) base by a rate
# curriculum $3 (e.g. "1 4 8 16": each stage at mem * rate tokens, the last at 128) from a fresh
# adapter; $4 > 0 continues the last stage for that many more steps (a second run from its
# adapter, so the first stays resumable as it was). KV slots (500xCompressor) hand the decoder
# every layer's keys and values instead of one input embedding. Output:
# .cache/demo/curve/<kind>-<ratio>x/r<rate>[-more] (and, for $5 = commit, models/demo/<kind>-<ratio>x).
stage_curve() {
  local kind=$1 mem=$2 rates=$3 more=${4:-0} commit=${5:-}
  [[ -s "$demo/base/model.safetensors" ]] || stage_icae
  local final=$((128 / mem)) dir=.cache/demo/curve/$kind-$((128 / mem))x
  local prev="" seed=70 rate
  local flags=(--slot-kind "$kind" --mem-size "$mem")
  for rate in $rates; do
    local out="$dir/r$rate" steps=600 extra=(--lm-ratio 0)
    ((rate == 1)) && steps=400
    if ((rate == final)); then
      steps=${CURVE_STEPS:-1000}
      extra=(--lm-ratio 0.2)
    fi
    pretrain_stage "$out" "$demo/base" "$steps" $((seed + rate)) "${flags[@]}" --rate "$rate" \
      --span-tokens $((mem * rate)) "${extra[@]}" ${prev:+--init-adapter "$prev"}
    prev=$out
    flags=()  # The kind and mem_size come with --init-adapter from now on.
  done
  if ((more > 0)); then
    pretrain_stage "$dir/r$final-more" "$demo/base" "$more" $((seed + 2 * final)) \
      --init-adapter "$prev" --rate "$final" --span-tokens 128 --lm-ratio 0.2
    prev=$dir/r$final-more
  fi
  [[ $commit == commit ]] || return 0
  local name="$demo/$kind-${final}x"
  rm -rf "$name" && mkdir -p "$name"
  cp "$prev/adapter.safetensors" "$prev/adapter_config.json" "$name/"
  sed -i "s|\"base_model\": \"[^\"]*\"|\"base_model\": \"$demo/base\"|" "$name/adapter_config.json"
}

# icae eval of every adapter the curve trained (its last stage), next to the committed ones:
# models/demo/eval-<kind>-<ratio>x.json.
stage_curve_eval() {
  local dir last name rate best
  for dir in .cache/demo/curve/*-*x; do
    [[ -d $dir ]] || continue
    best=-1  # The highest rate trained, then its continuation if there is one.
    for name in "$dir"/r*; do
      rate=${name##*/r}
      [[ $rate =~ ^[0-9]+$ && -s $name/adapter.safetensors ]] || continue
      ((rate > best)) && best=$rate
    done
    ((best > 0)) || continue
    last=$dir/r$best
    [[ -s $last-more/adapter.safetensors ]] && last=$last-more
    "$ICAE" eval --model "$demo/base" --adapter "$last" --file "$corpus/test.txt" \
      --span-tokens 128 --max-spans 64 --threads "$THREADS" \
      --json "$demo/eval-$(basename "$dir").json"
  done
}

# The committed KV 16x adapter trained further at 16x (one more stage of the same recipe), then
# committed and evaluated again when it is better (eval-kv-16x.json). KV16_STAGE numbers the
# stage (2: 1,200 steps, 3: 2,400 and 4: 1,200 on 2026-12-07).
stage_kv16_more() {
  local n=${KV16_STAGE:-2}
  local out=.cache/demo/curve/kv-16x/r16-more$n
  pretrain_stage "$out" "$demo/base" "${KV16_MORE:-1200}" $((101 + n)) \
    --init-adapter "$demo/kv-16x" --rate 16 --span-tokens 128 --lm-ratio 0.2
  "$ICAE" eval --model "$demo/base" --adapter "$out" --file "$corpus/test.txt" \
    --span-tokens 128 --max-spans 64 --threads "$THREADS" --json "$out/eval.json"
}

# A cross-model encoder for the frozen demo decoder (docs/training.md, 2026-12-07): the small model
# is the first layer of the ICAE encoder of the same ratio (models/demo/base with that adapter's
# LoRA merged, its memory and special rows), a linear projector starts as the identity. Stage 1
# pulls its slots towards the ICAE adapter's (slot distillation) with 20% continuation samples;
# stage 2 goes on with half continuation samples and the KL to the base reading the text.
cross_stage() {
  local out=$1 steps=$2 seed=$3 teacher=$4
  shift 4
  [[ -s "$out/cross_encoder.safetensors" ]] && return 0
  "$TRAIN" cross --model "$demo/base" --train "$corpus/train.txt" --valid "$corpus/valid.txt" \
    --out "$out" --checkpoint-dir "$out.ckpt" --memory-positions uniform --span-tokens 128 \
    --batch 8 --accum 1 --steps "$steps" --lr 1e-3 --warmup 20 --min-lr-ratio 1 --clip 2.0 \
    --dtype bfloat16 --seed "$seed" --threads "$THREADS" --checkpoint-every 100 \
    --eval-every 200 --valid-samples 32 --log-every 50 --slot-teacher "$teacher" \
    --slot-mse-weight 1 "$@"
}

stage_cross() {
  local ratio=$1 mem=$2 teacher=$3 more=$4 dir=.cache/demo/cross-$1x
  cross_stage "$dir/s1" 300 5 "$teacher" --mem-size "$mem" --rate "$ratio" --lm-ratio 0.2 \
    --encoder-init "$demo/base" --encoder-init-adapter "$teacher" --encoder-layers 1 \
    --projector linear
  cross_stage "$dir/s2" "$more" 6 "$teacher" --init-adapter "$dir/s1" --lm-ratio 0.5 \
    --kd-weight 1
  rm -rf "$demo/cross-${ratio}x" && mkdir -p "$demo/cross-${ratio}x"
  cp -r "$dir/s2/." "$demo/cross-${ratio}x/"
  "$ICAE" eval --model "$demo/base" --adapter "$demo/cross-${ratio}x" --file "$corpus/test.txt" \
    --span-tokens 128 --max-spans 64 --threads "$THREADS" --json "$demo/eval-cross-${ratio}x.json"
}

stage_probe() {
  for ratio in 4x 16x; do
    local adapter="$demo/icae"
    [[ $ratio == 16x ]] && adapter="$demo/icae-16x"
    "$TRAIN" probe --model "$demo/base" --adapter "$adapter" --file "$corpus/test.txt" \
      --spans 4 --steps 300 --normed --threads "$THREADS" --json "$demo/probe-$ratio.json"
  done
}

stage_eval() {
  "$ICAE" eval --model "$demo/base" --adapter "$demo/icae" --file "$corpus/test.txt" \
    --span-tokens 128 --max-spans 64 --threads "$THREADS" --json "$demo/eval.json"
  "$ICAE" eval --model "$demo/base" --adapter "$demo/icae-16x" --file "$corpus/test.txt" \
    --span-tokens 128 --max-spans 64 --threads "$THREADS" --json "$demo/eval-16x.json"
}

case "${1:-all}" in
  corpus) stage_corpus ;;
  base) stage_base ;;
  copy) stage_copy ;;
  icae) stage_icae ;;
  icae16) stage_icae16 ;;
  probe) stage_probe ;;
  eval) stage_eval ;;
  kv16) stage_curve kv 8 "1 4 8 16" 1500 commit ;;
  kv16-more) stage_kv16_more ;;
  curve-eval) stage_curve_eval ;;
  cross)
    stage_cross 4 32 "$demo/icae" "${CROSS_STEPS:-2400}"
    stage_cross 16 8 "$demo/icae-16x" "${CROSS16_STEPS:-600}"
    ;;
  curve)
    stage_curve kv 8 "1 4 8 16" 1500 commit
    CURVE_STEPS=${CURVE_STEPS:-600} stage_curve kv 32 "1 4"
    CURVE_STEPS=${CURVE_STEPS:-600} stage_curve kv 2 "1 4 16 64"
    CURVE_STEPS=${CURVE_STEPS:-600} stage_curve embedding 2 "1 4 16 64"
    ;;
  all)
    [[ -s "$corpus/tokenizer.model" ]] || stage_corpus
    [[ -s "$copy_base/model.safetensors" ]] || stage_copy
    [[ -s "$demo/icae/adapter.safetensors" ]] || stage_icae
    [[ -s "$demo/icae-16x/adapter.safetensors" ]] || stage_icae16
    ;;
  *)
    echo "usage: $0 [corpus|base|copy|icae|icae16|kv16|kv16-more|curve|curve-eval|cross|probe|eval|all]" >&2
    exit 2
    ;;
esac
