#!/usr/bin/env bash
# Reproduces models/demo/ from nothing: `make demo-model`, or one stage at a time:
#   tools/train/demo_model.sh corpus     # stage 1: corpus split + tokenizer   (minutes)
#   tools/train/demo_model.sh base       # stage 2: base LM          -> models/demo/base
#   tools/train/demo_model.sh icae       # stage 3: ICAE pretraining -> models/demo/icae
#   tools/train/demo_model.sh eval       # the held-out evaluation table (docs/training.md)
#   tools/train/demo_model.sh all        # stages 1-3 (each skipped when its output exists)
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

stage_corpus() {
  tools/corpus/make_corpus.sh "$corpus" "$corpus/tokenizer.model"
}

stage_base() {
  [[ -s "$corpus/train.txt" ]] || stage_corpus
  # Half of the windows repeat their first half: the frozen decoder must copy from its context
  # to read slots, and repeated text teaches that far sooner than plain text.
  "$TRAIN" lm --train "$corpus/train.txt" --valid "$corpus/valid.txt" \
    --tokenizer "$corpus/tokenizer.model" --out "$demo/base" \
    --checkpoint-dir .cache/demo/base.ckpt \
    --hidden 256 --layers 6 --heads 4 --kv-heads 4 --seq-len 256 --max-positions 512 \
    --batch 16 --accum 1 --steps 2500 --lr 1e-3 --warmup 100 --min-lr-ratio 0.1 \
    --weight-decay 0.1 --beta2 0.95 --clip 2.0 --dtype bfloat16 --save-dtype bfloat16 \
    --repeat-prob 0.5 --seed 1234 --threads "$THREADS" --checkpoint-every 100 --eval-every 500 \
    --valid-windows 64
}

stage_icae() {
  [[ -s "$demo/base/model.safetensors" ]] || stage_base
  "$TRAIN" pretrain --model "$demo/base" --train "$corpus/train.txt" --valid "$corpus/valid.txt" \
    --out "$demo/icae" --checkpoint-dir .cache/demo/icae.ckpt \
    --mem-size 32 --rate 4 --span-tokens 128 --lora-r 64 --lora-alpha 128 --lm-ratio 0.5 \
    --batch 8 --accum 1 --steps 1500 --lr 1e-3 --warmup 100 --min-lr-ratio 0.1 \
    --clip 2.0 --dtype bfloat16 --seed 4321 --threads "$THREADS" --checkpoint-every 50 \
    --eval-every 250 --valid-samples 32 --log-every 10
}

stage_eval() {
  "$ICAE" eval --model "$demo/base" --adapter "$demo/icae" --file "$corpus/test.txt" \
    --span-tokens 128 --max-spans 64 --threads "$THREADS" --json "$demo/eval.json"
}

case "${1:-all}" in
  corpus) stage_corpus ;;
  base) stage_base ;;
  icae) stage_icae ;;
  eval) stage_eval ;;
  all)
    [[ -s "$corpus/tokenizer.model" ]] || stage_corpus
    [[ -s "$demo/base/model.safetensors" ]] || stage_base
    [[ -s "$demo/icae/adapter.safetensors" ]] || stage_icae
    ;;
  *) echo "usage: $0 [corpus|base|icae|eval|all]" >&2; exit 2 ;;
esac
