#!/usr/bin/python3
"""Stand-in for build/bin/icae-encoder and icae-decoder, to test deploy/local/run.sh before (and
independently of) the real services: the code under test is the runner, not these.

Behaves as docs/operations.md says a service does at its edges: takes --listen / --metrics_listen
(port 0 = free), prints "metrics on HOST:PORT" and "listening on HOST:PORT", answers
grpc.health.v1 for "" and icae.v1.<Service> with NOT_SERVING while "loading"
(--standin_load_seconds) then SERVING, serves tests/deploy/testdata/<service>.prom on /metrics (counters growing), and on
SIGTERM turns NOT_SERVING, waits --drain_seconds (capped at 1 s) and exits 0. Other flags are
accepted and ignored. The service is taken from the program name (icae-encoder / icae-decoder).
"""

import concurrent.futures
import http.server
import signal
import sys
import threading
import time
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import exposition_server  # noqa: E402


def parse_flags(argv):
    flags, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
        elif arg.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            key, value = arg[2:], argv[i + 1]
            i += 1
        else:
            key, value = arg.lstrip("-"), "true"
        flags[key.replace("-", "_")] = value
        i += 1
    return flags


def main():
    svc = Path(sys.argv[0]).name.replace("icae-", "")
    flags = parse_flags(sys.argv[1:])
    health_names = {"", f"icae.v1.{svc.capitalize()}"}
    start = time.monotonic()
    state = {"serving": False}

    def check(request, context):
        service = request[2:].decode() if request else ""
        if service not in health_names:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
        return b"\x08\x01" if state["serving"] else b"\x08\x02"

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})])
    host, _, port = flags.get("listen", "127.0.0.1:0").rpartition(":")
    bound = server.add_insecure_port(f"{host}:{port}")
    text = (HERE.parent / "testdata" / f"{svc}.prom").read_text()
    mhost, _, mport = flags.get("metrics_listen", "127.0.0.1:0").rpartition(":")
    metrics = http.server.ThreadingHTTPServer(
        (mhost, int(mport)), exposition_server.make_handler(text, start))
    threading.Thread(target=metrics.serve_forever, daemon=True).start()
    server.start()
    print(f"metrics on {mhost}:{metrics.server_address[1]}", flush=True)
    print(f"listening on {host}:{bound}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not stop.wait(float(flags.get("standin_load_seconds", "1"))):
        state["serving"] = True
    stop.wait(float(flags.get("standin_max_seconds", "600")))
    state["serving"] = False
    time.sleep(min(1.0, float(flags.get("drain_seconds", "30"))))
    server.stop(grace=0.5).wait()
    metrics.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
