#!/usr/bin/env bash
# Opt-in (label `opt_in`, left out of `make test`; run with `make test-opt-in`): loads a released
# checkpoint the user has, e.g. Mistral-7B-Instruct-v0.2 with mistral_7b_pretrained_icae.safetensors,
# and checks that it autoencodes a held-out paragraph (BLEU-4 >= ICAE_REAL_MIN_BLEU, default 0.9),
# through the same loader, compressor and decoder the services use:
#
#   ICAE_REAL_MODEL=/models/Mistral-7B-Instruct-v0.2 \
#   ICAE_REAL_ADAPTER=/models/mistral_7b_pretrained_icae.safetensors make test-opt-in
#
# Without ICAE_REAL_MODEL / ICAE_REAL_ADAPTER it fails saying so (it is only run when asked for).
# bfloat16 on CPU by default (ICAE_REAL_DTYPE); a 7B model needs ~16 GB and minutes here.
set -euo pipefail
bin_dir=$1
model=${ICAE_REAL_MODEL:-}
adapter=${ICAE_REAL_ADAPTER:-}
if [[ -z "$model" || -z "$adapter" ]]; then
  echo "FAIL: set ICAE_REAL_MODEL (HF model directory) and ICAE_REAL_ADAPTER (ICAE adapter)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Public-domain prose (Darwin, On the Origin of Species, 1859), two spans' worth.
cat > "$work/text.txt" <<'TEXT'
When we look to the individuals of the same variety or sub-variety of our older cultivated plants
and animals, one of the first points which strikes us, is, that they generally differ much more from
each other, than do the individuals of any one species or variety in a state of nature. When we
reflect on the vast diversity of the plants and animals which have been cultivated, and which have
varied during all ages under the most different climates and treatment, I think we are driven to
conclude that this greater variability is simply due to our domestic productions having been raised
under conditions of life not so uniform as, and somewhat different from, those to which the
parent-species have been exposed under nature. There is, also, I think, some probability in the view
propounded by Andrew Knight, that this variability may be partly connected with excess of food. It
seems pretty clear that organic beings must be exposed during several generations to the new
conditions of life to cause any appreciable amount of variation; and that when the organisation has
once begun to vary, it generally continues to vary for many generations. No case is on record of a
variable being ceasing to be variable under cultivation. Our oldest cultivated plants, such as
wheat, still often yield new varieties: our oldest domesticated animals are still capable of rapid
improvement or modification.
TEXT
"$bin_dir/icae" eval --model "$model" --adapter "$adapter" --file "$work/text.txt" \
  --span-tokens 128 --max-spans 1 --dtype "${ICAE_REAL_DTYPE:-bfloat16}" --json "$work/eval.json"
bleu=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bleu4'])" "$work/eval.json")
min=${ICAE_REAL_MIN_BLEU:-0.9}
if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$bleu" "$min"; then
  echo "ok: $adapter on $model reconstructs at BLEU-4 $bleu (>= $min)"
else
  echo "FAIL: BLEU-4 $bleu < $min" >&2
  exit 1
fi
