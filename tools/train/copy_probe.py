#!/usr/bin/python3
"""Does a base LM copy from its context? Feeds [BOS] + A + A[:repeat] (A = the first `span` tokens of
a text) through `icae logits` and prints the mean next-token loss (nats) on A and on its repeat.
A model that copies scores the repeat far below A; one that does not scores them alike.

  tools/train/copy_probe.py --model models/demo/base --text-file F [--offset 1500] [--chars 1500]
      [--span 127] [--repeat 64] [--icae build/bin/icae]
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from array import array


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--text-file", required=True)
    p.add_argument("--offset", type=int, default=1500, help="first character used")
    p.add_argument("--chars", type=int, default=1500, help="characters tokenized")
    p.add_argument("--span", type=int, default=127, help="tokens in A")
    p.add_argument("--repeat", type=int, default=64, help="tokens of A repeated")
    p.add_argument("--icae", default="build/bin/icae")
    a = p.parse_args()
    with open(a.text_file, "rb") as f:
        text = f.read()[a.offset:a.offset + a.chars].decode("utf-8", "ignore")
    out = subprocess.run([a.icae, "tokenize", "--model", a.model, "--text", text],
                         check=True, capture_output=True, text=True).stdout
    ids = [int(x) for x in out.strip().split(",")][:a.span]
    if len(ids) < a.span or a.repeat > a.span:
        sys.exit("copy_probe: text too short for --span, or --repeat > --span")
    seq = [1] + ids + ids[:a.repeat]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "logits.safetensors")
        subprocess.run([a.icae, "logits", "--model", a.model, "--token-ids",
                        ",".join(map(str, seq)), "--out", path], check=True)
        raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    entry = json.loads(raw[8:8 + n])["logits"]
    begin, end = entry["data_offsets"]
    logits = array("f")
    logits.frombytes(raw[8 + n + begin:8 + n + end])
    rows, vocab = entry["shape"]
    nll = []
    for i in range(rows - 1):
        row = logits[i * vocab:(i + 1) * vocab]
        top = max(row)
        nll.append(top + math.log(sum(math.exp(x - top) for x in row)) - row[seq[i + 1]])
    first, repeat = nll[:a.span], nll[a.span + 1:]
    print(f"A ({len(first)} tokens): {sum(first) / len(first):.3f} nats;  "
          f"repeat of A ({len(repeat)} tokens): {sum(repeat) / len(repeat):.3f} nats")


if __name__ == "__main__":
    main()
