#!/usr/bin/python3
"""Chunked prefill: inter-token latency of running streams while a long context arrives.

Starts icae-decoder (demo model) twice, with --prefill_chunk_tokens 0 (each context in one piece:
the baseline) and with chunks; in each, 4 streams generate (ignore_eos) while, after 0.5 s, a request
with a long text context arrives. Prints the running streams' inter-token gaps (p50, p99, max)
over the window the long request is prefilled in, and its time to first token.

    tools/bench/chunked_prefill_bench.py [--chunks 64] [--context-chars 1800]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("ICAE_PYTHON_STUBS", str(REPO / "build" / "python"))
sys.path.insert(0, str(REPO / "clients" / "python"))
sys.path.insert(0, str(REPO / "tests" / "clients"))
from icae_client import DecoderClient  # noqa: E402
from service_process import ServiceProcess  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def run(chunk: int, text: str, threads: str) -> dict:
    proc = ServiceProcess(REPO / "build" / "bin" / "icae-decoder",
                          ["--model", str(REPO / "models/demo/base"), "--adapter",
                           str(REPO / "models/demo/icae"), "--threads", threads,
                           "--prefill_chunk_tokens", str(chunk), "--drain_seconds", "1"],
                          f"chunk{chunk}")
    try:
        proc.wait_listening(60)
        with DecoderClient(proc.address, timeout=120) as dec:
            dec.wait_until_serving(60)
            dec.generate(context=["warm up"], prompt="x", template="raw", max_new_tokens=4)
            arrivals = [[] for _ in range(4)]

            def stream(i: int) -> None:
                for _ in dec.stream(context=[f"stream {i} says"], prompt=" and", template="raw",
                                    max_new_tokens=400, ignore_eos=True):
                    arrivals[i].append(time.perf_counter())

            workers = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
            for w in workers:
                w.start()
            time.sleep(0.5)
            t0 = time.perf_counter()
            first = None
            for chunk_out in dec.stream(context=[text], prompt=" Summary:", template="raw",
                                        max_new_tokens=2):
                if first is None:
                    first = time.perf_counter()
            for w in workers:
                w.join()
            # Gaps of the running streams from the long request's arrival to its first token
            # (plus 100 ms): the window its prefill falls in.
            gaps = []
            for times in arrivals:
                for a, b in zip(times, times[1:]):
                    if t0 <= b <= first + 0.1:
                        gaps.append(b - a)
            usage_prompt = dec.generate(context=[text], prompt=" Summary:", template="raw",
                                        max_new_tokens=1).usage.prompt_tokens
            steady = [b - a for times in arrivals for a, b in zip(times, times[1:]) if b < t0]
    finally:
        proc.kill()
        proc.close()
    return {"chunk": chunk, "gaps": gaps, "ttft": first - t0, "prompt_tokens": usage_prompt,
            "steady_p50": statistics.median(steady)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--context-chars", type=int, default=1800)
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()
    corpus = REPO / ".cache" / "demo" / "corpus" / "test.txt"
    text = corpus.read_text(encoding="utf-8")[:args.context_chars]
    print(f"chunked prefill: demo model, 4 running streams, a long context arriving after 0.5 s; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    for chunk in (0, args.chunks):
        r = run(chunk, text, args.threads)
        g = r["gaps"]
        print(f"  --prefill_chunk_tokens {chunk:4d}: long request {r['prompt_tokens']} positions, "
              f"TTFT {r['ttft'] * 1e3:7.1f} ms; running streams' gaps during it: n {len(g)}, "
              f"p50 {statistics.median(g) * 1e3:6.1f} ms, p99 {percentile(g, 0.99) * 1e3:6.1f} "
              f"ms, max {max(g) * 1e3:6.1f} ms (steady p50 before: "
              f"{r['steady_p50'] * 1e3:.1f} ms)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
