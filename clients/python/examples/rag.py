#!/usr/bin/python3
"""Retrieval-augmented generation over compressed documents.

Compresses a few documents once on the encoder service, keeps their memory slots, then asks
every question against them on the decoder service (the context is the cached slots: no document
is sent or re-encoded again). Prints the compression ratio and the timings.

    pip install --no-build-isolation ./clients/python    # after `make`, in a venv
    python clients/python/examples/rag.py --encoder localhost:50051 --decoder localhost:50052 \\
        docs/*.txt --question "Who founded the company?"

(or, without installing: PYTHONPATH=clients/python ICAE_PYTHON_STUBS=build/python ...)

Without document files it uses three short built-in documents and questions. With
--token-ids, every document and question is whitespace-separated token ids instead of text
(for models without a tokenizer, such as the test fixtures).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Sequence, Union

from icae_client import DecoderClient, EncoderClient, IcaeError

DOCUMENTS = [
    "The Harbor Street library opened in 1911. It was built with money raised by the city's "
    "dock workers, who each gave one day's wage, and its reading room faces the old lighthouse.",
    "Mira Okafor became head librarian in 1987. She started the night-reading program, which "
    "keeps the reading room open until midnight for shift workers from the port.",
    "In 2009 a flood damaged the basement archive. About four thousand maps were dried by "
    "volunteers in the lighthouse keeper's house and returned to the library a year later.",
]
QUESTIONS = [
    "Who paid for the library to be built?",
    "What did Mira Okafor start?",
    "Where were the maps dried after the flood?",
]

Content = Union[str, List[int]]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("documents", nargs="*", help="text files to compress (one document each)")
    parser.add_argument("--encoder", action="append", required=True,
                        help="encoder HOST:PORT; repeat for replicas (round-robin)")
    parser.add_argument("--decoder", action="append", required=True,
                        help="decoder HOST:PORT; repeat for replicas (round-robin)")
    parser.add_argument("--question", action="append", help="question (repeatable)")
    parser.add_argument("--token", help="bearer token of both services")
    parser.add_argument("--token-ids", action="store_true",
                        help="documents and questions are whitespace-separated token ids")
    parser.add_argument("--slot-dtype", choices=("float32", "bfloat16", "float16"),
                        help="wire dtype of the slots (default: the encoder's compute dtype)")
    parser.add_argument("--template", help="prompt template (default: the decoder's choice)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline per call, seconds")
    return parser.parse_args(argv)


def content(text: str, token_ids: bool) -> Content:
    return [int(t) for t in text.split()] if token_ids else text


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    texts = [Path(p).read_text() for p in args.documents] or DOCUMENTS
    questions = args.question or QUESTIONS
    documents = [content(t, args.token_ids) for t in texts]
    options = {"token": args.token, "timeout": args.timeout}
    with EncoderClient(args.encoder, **options) as encoder, \
            DecoderClient(args.decoder, **options) as decoder:
        started = time.perf_counter()
        slots = encoder.compress(documents, slot_dtype=args.slot_dtype,
                                 ids=[f"doc{i}" for i in range(len(documents))])
        elapsed = time.perf_counter() - started
        for doc in slots:
            print(f"{doc.id}: {doc.source_tokens} tokens -> {doc.num_slots} slots "
                  f"({doc.compression_ratio:.2f}x), {doc.nbytes} bytes {doc.dtype}")
        total_tokens = sum(d.source_tokens for d in slots)
        total_slots = sum(d.num_slots for d in slots)
        print(f"compressed {len(slots)} documents: {total_tokens} tokens -> {total_slots} slots "
              f"({total_tokens / max(total_slots, 1):.2f}x) in {elapsed * 1000:.1f} ms "
              f"(encoder queue {slots.usage.queue_seconds * 1000:.1f} ms, "
              f"compute {slots.usage.compute_seconds * 1000:.1f} ms)")

        for question in questions:
            started = time.perf_counter()
            result = decoder.generate(context=list(slots),
                                      prompt=content(question, args.token_ids),
                                      template=args.template,
                                      max_new_tokens=args.max_new_tokens)
            elapsed = time.perf_counter() - started
            usage = result.usage
            answer = result.text.strip() or " ".join(str(i) for i in result.token_ids)
            print(f"\nQ: {question}\nA: {answer}")
            print(f"   {usage.generated_tokens} tokens ({result.finish_reason}) in "
                  f"{elapsed * 1000:.1f} ms, first token after "
                  f"{usage.time_to_first_token_seconds * 1000:.1f} ms; context "
                  f"{usage.slot_tokens} slot positions instead of "
                  f"{usage.uncompressed_context_tokens} tokens")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except IcaeError as e:
        print(f"rag.py: {e}", file=sys.stderr)
        sys.exit(1)
