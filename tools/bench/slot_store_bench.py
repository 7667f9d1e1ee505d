#!/usr/bin/python3
"""Slot-store benchmark (issue 16's targets), on the real services and a real redis-server:

1. Cache hit ratio with 3 encoder replicas, 300 single-span requests over 50 documents (a seeded
   Zipf-like draw): one replica (the baseline: a single cache sees every repeat), round-robin
   over 3, content-hash routing over 3, and round-robin over 3 sharing one Redis store.
2. Generate with 10 one-segment documents (the demo decoder's context is 512 positions) by
   handle vs by inline slots (float32, bfloat16, int8): request
   bytes and latency at concurrency 1 (max_new_tokens 1, so the call is transfer + validation +
   prefill + one step), medians over --repeats calls, interleaved.
3. Redis killed mid-run: compress traffic for 6 s, Redis killed at 2 s and restarted at 4 s;
   failed calls counted.

    tools/bench/slot_store_bench.py [--model DIR --adapter DIR] [--json OUT]

Needs build/bin (icae-encoder, icae-decoder), Debian's redis-server and python3-grpcio; the
Python client is imported from clients/python with the stubs in build/python.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("ICAE_PYTHON_STUBS", str(REPO / "build" / "python"))
sys.path.insert(0, str(REPO / "clients" / "python"))
sys.path.insert(0, str(REPO / "tests" / "clients"))
from icae_client import DecoderClient, EncoderClient, IcaeError  # noqa: E402
from icae_client import decoder_pb2  # noqa: E402
from service_process import ServiceProcess  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save",
             "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def documents(corpus: Path, count: int, chars: int) -> list:
    text = corpus.read_text(encoding="utf-8")
    return [text[i * chars:(i + 1) * chars] for i in range(count)]


def start(binary: str, args: list, name: str) -> ServiceProcess:
    process = ServiceProcess(REPO / "build" / "bin" / binary, args, name)
    process.wait_listening(120)
    return process


def hit_ratios(model_args: list, docs: list, redis: Redis) -> dict:
    rng = random.Random(7)
    weights = [1.0 / (k + 1) for k in range(len(docs))]
    workload = rng.choices(range(len(docs)), weights=weights, k=300)
    out = {}
    for name, replicas, routing, store in (("single replica", 1, "round_robin", False),
                                           ("round-robin x3", 3, "round_robin", False),
                                           ("hash x3", 3, "hash", False),
                                           ("round-robin x3 + shared store", 3, "round_robin",
                                            True)):
        extra = ["--slot_store", redis.url] if store else []
        processes = [start("icae-encoder", model_args + extra, f"bench-enc{i}")
                     for i in range(replicas)]
        try:
            addresses = [p.address for p in processes]
            with EncoderClient(addresses if replicas > 1 else addresses[0], routing=routing,
                               timeout=120) as client:
                client.wait_until_serving(120)
                if replicas > 1:  # round_robin spreads over connected replicas only
                    for p in processes:
                        with EncoderClient(p.address) as one:
                            one.wait_until_serving(120)
                            one.compress(["warm-up"], bypass_cache=True)
                hits = store_hits = 0
                start_time = time.perf_counter()
                for d in workload:
                    usage = client.compress([docs[d]]).usage
                    hits += usage.cache_hits
                    store_hits += usage.store_hits
                seconds = time.perf_counter() - start_time
            out[name] = {"hit_ratio": (hits + store_hits) / len(workload),
                         "cache_hits": hits, "store_hits": store_hits,
                         "computed": len(workload) - hits - store_hits, "seconds": seconds}
            print(f"  {name:32s} hit ratio {out[name]['hit_ratio']:.3f} "
                  f"(cache {hits}, store {store_hits}, computed {out[name]['computed']}) "
                  f"in {seconds:.1f} s", flush=True)
        finally:
            for p in processes:
                p.kill()
                p.close()
        if store:
            subprocess.run(["redis-cli", "-p", str(redis.port), "FLUSHALL"],
                           stdout=subprocess.DEVNULL, check=False)
    distinct = len(set(workload))
    print(f"  ({len(workload)} requests over {distinct} distinct documents: at most "
          f"{(len(workload) - distinct) / len(workload):.3f} can hit)")
    return out


def handles_vs_inline(model_args: list, docs: list, redis: Redis, repeats: int) -> dict:
    store = ["--slot_store", redis.url]
    encoder = start("icae-encoder", model_args + store, "bench-enc")
    decoder = start("icae-decoder", model_args + store, "bench-dec")
    out = {}
    try:
        with EncoderClient(encoder.address, timeout=300) as enc, \
                DecoderClient(decoder.address, timeout=300) as dec:
            enc.wait_until_serving(120)
            dec.wait_until_serving(120)
            variants = {}
            for dtype in ("float32", "bfloat16", "int8"):
                variants[f"inline {dtype}"] = list(enc.compress(docs, slot_dtype=dtype))
            info = dec.get_info()
            variants["handle (float32 in Redis)"] = list(
                enc.compress(docs, slot_dtype="float32", handles=True))
            requests = {name: decoder_pb2.GenerateRequest(
                context=[decoder_pb2.ContextPart(handle=p.proto) if hasattr(p, "key")
                         else decoder_pb2.ContextPart(slots=p.proto) for p in parts],
                prompt="Summarize.", max_new_tokens=1, ignore_eos=True)
                for name, parts in variants.items()}
            # The same requests with an unknown template: the decoder receives, parses, fetches
            # (handles) and decodes every slot tensor, then refuses the template before any
            # prefill, so the call time is the cost of getting the slots in.
            refused = {}
            for name, request in requests.items():
                r = decoder_pb2.GenerateRequest()
                r.CopyFrom(request)
                r.template_name = "bench-refused"
                refused[name] = r
            times = {name: [] for name in requests}
            transfer = {name: [] for name in requests}
            for name, request in requests.items():  # warm-up
                dec.generate_request(request)
            for _ in range(repeats):
                for name, request in requests.items():
                    t = time.perf_counter()
                    dec.generate_request(request)
                    times[name].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    try:
                        dec.generate_request(refused[name])
                        raise RuntimeError("the refused template was accepted")
                    except IcaeError as e:
                        if e.code_name != "INVALID_ARGUMENT":
                            raise
                    transfer[name].append(time.perf_counter() - t)
            base = statistics.median(times["inline float32"])
            # The decoder's own clock for the handle fetch (one pipelined GET of 10 keys).
            fetch_sum = decoder.counter("icae_decoder_store_duration_seconds_sum", op="get")
            fetch_count = decoder.counter("icae_decoder_store_duration_seconds_count", op="get")
            out["decoder_fetch_mean_seconds"] = fetch_sum / max(fetch_count, 1)
            slots = sum(p.num_slots for p in variants["inline float32"])
            print(f"  10 documents, {slots} slots of width {info.hidden_size}; max_new_tokens 1; "
                  f"median of {repeats}")
            for name, request in requests.items():
                median = statistics.median(times[name])
                slots_in = statistics.median(transfer[name])
                out[name] = {"request_bytes": request.ByteSize(), "median_seconds": median,
                             "vs_inline_float32": median / base,
                             "slots_in_median_seconds": slots_in}
                print(f"  {name:28s} request {request.ByteSize():>9d} B   latency "
                      f"{median * 1e3:8.2f} ms  ({median / base:.2f}x inline float32)   "
                      f"slots in (refused before prefill) {slots_in * 1e3:6.2f} ms")
            print(f"  decoder-side handle fetch (10 keys, one round trip): mean "
                  f"{out['decoder_fetch_mean_seconds'] * 1e3:.2f} ms over {fetch_count:.0f}")
    finally:
        for p in (encoder, decoder):
            p.kill()
            p.close()
    return out


def redis_killed(model_args: list, redis: Redis) -> dict:
    encoder = start("icae-encoder", model_args + ["--slot_store", redis.url], "bench-kill")
    ok = failed = 0
    try:
        with EncoderClient(encoder.address, timeout=60) as enc:
            enc.wait_until_serving(120)
            begin = time.perf_counter()
            killed = restarted = False
            n = 0
            while time.perf_counter() - begin < 6:
                elapsed = time.perf_counter() - begin
                if elapsed > 2 and not killed:
                    redis.kill()
                    killed = True
                if elapsed > 4 and not restarted:
                    redis.start()
                    restarted = True
                try:
                    enc.compress([[5 + n % 1000, 6, 7, 8 + n // 1000]], handles=n % 2 == 0)
                    ok += 1
                except Exception:  # noqa: BLE001 - any failure counts
                    failed += 1
                n += 1
            errors = encoder.counter("icae_encoder_store_lookups_total", result="error")
    finally:
        encoder.kill()
        encoder.close()
    print(f"  {ok + failed} calls over 6 s (Redis down from 2 s to 4 s): {failed} failed; "
          f"{errors:.0f} store lookups counted as errors")
    return {"calls": ok + failed, "failed": failed, "store_lookup_errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "demo" / "base"))
    parser.add_argument("--adapter", default=str(REPO / "models" / "demo" / "icae"))
    parser.add_argument("--corpus", default=str(REPO / ".cache" / "demo" / "corpus" / "test.txt"))
    parser.add_argument("--threads", default="2")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default="")
    parser.add_argument("--only", default="", help="run only part 1, 2 or 3")
    args = parser.parse_args()
    model_args = ["--model", args.model, "--adapter", args.adapter, "--threads", args.threads,
                  "--drain_seconds", "1"]
    redis = Redis()
    try:
        print(f"slot store benchmark: {args.model} + {args.adapter}, {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        result = {}
        if args.only in ("", "1"):
            print("1. cache hit ratio, 300 requests over 50 documents (~512 tokens each)")
            result["hit_ratio"] = hit_ratios(model_args, documents(Path(args.corpus), 50, 2000),
                                             redis)
        # The demo decoder reads at most 512 positions: 10 one-segment documents (32 slots each).
        if args.only in ("", "2"):
            print("2. Generate by handle vs inline slots, 10 documents (~100 tokens each)")
            result["handles"] = handles_vs_inline(
                model_args, documents(Path(args.corpus), 10, 400), redis, args.repeats)
        if args.only in ("", "3"):
            print("3. Redis killed mid-run")
            result["redis_killed"] = redis_killed(model_args, redis)
    finally:
        redis.kill()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
