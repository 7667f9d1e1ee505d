#!/usr/bin/env python3
"""Renders the project's measured figures as PNGs (Debian's python3-matplotlib), from the JSON the
eval and probe commands write:

    tools/figures/make_figures.py [--out docs/figures] [--demo models/demo]

- quality_vs_ratio.png: autoencoding BLEU-4 and the continuation perplexity gap (slots vs text)
  of the demo model's adapters at each compression ratio, with the probe's optimised slots (the
  decoder's own limit) beside them. From eval.json, eval-16x.json, probe-4x.json, probe-16x.json
  (`tools/train/demo_model.sh eval` and `probe`), plus eval-kv-<ratio>x.json and
  eval-embedding-<ratio>x.json where measured (the slot-kind curve, `demo_model.sh curve`), and
  eval-cross-<ratio>x.json (a cross-model encoder, `demo_model.sh cross`).
- continuation_by_position.png: continuation perplexity by position band with the text, the
  slots or nothing as context (eval.json's ppl_by_position): where the slots fall short.
- latency_vs_context.png: answer latency of 8 concurrent requests by context length: the full
  text, compress + generate, and generation from cached slots (every later question over the same
  documents). From decoder_latency.json (icae-bench-decoder --json; `make bench` writes
  decoder.json).
- decode_vs_llamacpp.png: decode tokens/s by batch, ours next to llama.cpp on the same shapes
  (decode_vs_llamacpp.json, from tools/bench/llamacpp_compare.sh's medians).

The benchmark inputs (--bench, default docs/figures/data/) carry their source: command, machine,
date.

Rerun after those files change; the README shows both figures. Only measured points are drawn.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"make_figures: {path}: {error}")


def optional_evals(demo: Path, kind: str) -> list:
    """(ratio, eval json) of the curve's extra adapters of `kind` that were measured
    (eval-<kind>-<ratio>x.json, `tools/train/demo_model.sh curve` then `icae eval`)."""
    found = []
    for path in sorted(demo.glob(f"eval-{kind}-*x.json")):
        ratio = path.stem[len(f"eval-{kind}-"):-1]
        if ratio.isdigit():
            found.append((int(ratio), load(path)))
    return sorted(found, key=lambda p: p[0])


def quality_vs_ratio(demo: Path, out: Path) -> None:
    points = []  # (ratio, eval json, probe json)
    for ratio, eval_name, probe_name in ((4, "eval.json", "probe-4x.json"),
                                         (16, "eval-16x.json", "probe-16x.json")):
        points.append((ratio, load(demo / eval_name), load(demo / probe_name)))
    embedding = sorted([(p[0], p[1]) for p in points] + optional_evals(demo, "embedding"),
                       key=lambda p: p[0])
    kv = optional_evals(demo, "kv")
    cross = optional_evals(demo, "cross")  # A cross-model encoder (`demo_model.sh cross`).
    ratios = sorted({p[0] for p in embedding + kv + cross})
    probe_ratios = [p[0] for p in points]
    probe_bleu = [next(r["bleu4"] for r in p[2]["rows"] if r["source"] == "optimised")
                  for p in points]

    def gap(e: dict) -> float:
        return 100.0 * (e["ppl_slots"] / e["ppl_text"] - 1.0)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot([p[0] for p in embedding], [p[1]["bleu4"] for p in embedding], "o-",
              label="embedding slots (ICAE; 64 test spans)")
    if kv:
        left.plot([p[0] for p in kv], [p[1]["bleu4"] for p in kv], "^-", color="C2",
                  label="KV slots (500xCompressor)")
    if cross:
        left.plot([p[0] for p in cross], [p[1]["bleu4"] for p in cross], "D-", color="C4",
                  label="cross-model encoder (1 layer + projector)")
    left.plot(probe_ratios, probe_bleu, "s--", label="optimised embedding slots (probe, 4 spans)")
    left.axhline(0.95, color="grey", lw=0.8, ls=":", label="target 0.95")
    left.set(xscale="log", xticks=ratios, xticklabels=[f"{r}x" for r in ratios], ylim=(0, 1.05),
             xlabel="compression ratio (tokens per slot)", ylabel="autoencoding BLEU-4",
             title="Reconstruction")
    left.legend(fontsize=7, loc="lower left")
    gaps = [gap(p[1]) for p in embedding + kv + cross]
    right.plot([p[0] for p in embedding], [gap(p[1]) for p in embedding], "o-", color="C3",
               label="embedding slots vs original text")
    if kv:
        right.plot([p[0] for p in kv], [gap(p[1]) for p in kv], "^-", color="C2",
                   label="KV slots vs text (from token 2)")
    if cross:
        right.plot([p[0] for p in cross], [gap(p[1]) for p in cross], "D-", color="C4",
                   label="cross-model encoder vs text")
    right.axhline(5, color="grey", lw=0.8, ls=":", label="target +5%")
    right.set(xscale="log", xticks=ratios, xticklabels=[f"{r}x" for r in ratios],
              ylim=(min(0, min(gaps) * 1.25), max(gaps) * 1.25),
              xlabel="compression ratio (tokens per slot)",
              ylabel="continuation perplexity gap (%)", title="Continuation")
    right.legend(fontsize=7, loc="upper left")
    for axis in (left, right):
        axis.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle("Demo model (4.8M-parameter Llama): quality vs compression, by slot kind",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_ratio.png", dpi=110)
    plt.close(fig)


def continuation_by_position(demo: Path, out: Path) -> None:
    bands = load(demo / "eval.json").get("ppl_by_position")
    if not bands:
        raise SystemExit("make_figures: eval.json has no ppl_by_position (rerun "
                         "tools/train/demo_model.sh eval)")
    labels = [f"{b['first']}" if b["first"] == b["last"] else f"{b['first']}-{b['last']}"
              for b in bands]
    x = range(len(bands))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, label, style in (("ppl_none", "no context", "^:"), ("ppl_slots", "32 slots (4x)", "o-"),
                              ("ppl_text", "original 128 tokens", "s--")):
        ax.plot(x, [b[key] for b in bands], style, label=label)
    ax.set(yscale="log", xticks=list(x), xticklabels=labels,
           xlabel="position in the 128-token continuation", ylabel="perplexity (log scale)",
           title="Demo model: continuation perplexity by position, by context")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "continuation_by_position.png", dpi=110)
    plt.close(fig)


def latency_vs_context(bench: Path, out: Path) -> None:
    data = load(bench / "decoder_latency.json")
    rows = sorted(data["latency"], key=lambda r: r["context"])
    series = (("full_text_s", "full text in context"),
              ("compress_and_generate_s", "compress + generate"),
              ("cached_slots_s", "cached slots (a later question)"))
    width = 0.26
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (key, label) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r[key] for r in rows], width, label=label)
        ax.bar_label(bars, fmt="%.0f s", fontsize=7)
    ax.set(xticks=list(range(len(rows))),
           xticklabels=[f"{data['contexts']} x {r['context']} tokens" for r in rows],
           ylabel="seconds, wall clock",
           title=f"Answer latency, {data['contexts']} concurrent requests, "
                 f"{data['gen_tokens']} tokens each (134M model, CPU)")
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "source: " + data.get("source", "")[:150], fontsize=5, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out / "latency_vs_context.png", dpi=110)
    plt.close(fig)


def decode_vs_llamacpp(bench: Path, out: Path) -> None:
    data = load(bench / "decode_vs_llamacpp.json")
    models = list(dict.fromkeys(r["model"] for r in data["rows"]))
    fig, axes = plt.subplots(1, len(models), figsize=(9, 3.6))
    for ax, model in zip(axes, models):
        rows = [r for r in data["rows"] if r["model"] == model]
        labels = [f"{r['dtype']}\nbatch {r['batch']}" for r in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["llamacpp"] for r in rows], 0.4, label="llama.cpp")
        ax.bar([x + 0.2 for x in xs], [r["ours"] for r in rows], 0.4, label="this project")
        for x, r in zip(xs, rows):
            ax.annotate(f"{r['ours'] / r['llamacpp']:.2f}x", (x + 0.2, r["ours"]),
                        ha="center", va="bottom", fontsize=7)
        ax.set(xticks=list(xs), title=model, ylabel="decode tokens/s")
        ax.set_xticklabels(labels, fontsize=7)
        ax.legend(fontsize=7)
    fig.suptitle("Decode speed next to llama.cpp, same shapes, same machine (CPU, 2 threads)",
                 fontsize=10)
    fig.text(0.01, 0.01, "source: " + data.get("source", "")[:160], fontsize=5, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out / "decode_vs_llamacpp.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--demo", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--bench", type=Path, default=ROOT / "docs" / "figures" / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quality_vs_ratio(args.demo, args.out)
    continuation_by_position(args.demo, args.out)
    latency_vs_context(args.bench, args.out)
    decode_vs_llamacpp(args.bench, args.out)
    print(f"wrote {args.out}/quality_vs_ratio.png, continuation_by_position.png, "
          "latency_vs_context.png, decode_vs_llamacpp.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
