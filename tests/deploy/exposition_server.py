#!/usr/bin/python3
"""Serves Prometheus text expositions from files, one HTTP port per file, for the deploy checks.

The files are data (tests/deploy/testdata/*.prom): a sample of every metric in
docs/operations.md. Counter and histogram values are multiplied by (1 + seconds since start), so
rates are positive and histogram quantiles defined, as on a service under load; gauges are served
as written. Prints "metrics on HOST:PORT" per file, in order, like the services do, and exits by
itself after --max_seconds.

  exposition_server.py --file encoder.prom --file decoder.prom [--host 127.0.0.1]
"""

import argparse
import http.server
import re
import sys
import threading
import time

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)\s*$")


def growing_families(text):
    """Names of the counter and histogram families (whose samples grow)."""
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) (counter|histogram)$", text, re.M)}


def render(text, growing, factor):
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or line.startswith("#"):
            out.append(line)
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if name in growing or family in growing:
            value *= factor
        out.append(f"{name}{labels} {value!r}")
    return "\n".join(out) + "\n"


def make_handler(text, start):
    growing = growing_families(text)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(text, growing, 1.0 + time.monotonic() - start).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max_seconds", type=float, default=600)
    args = parser.parse_args()
    start = time.monotonic()
    for path in args.file:
        with open(path) as f:
            text = f.read()
        server = http.server.ThreadingHTTPServer((args.host, 0), make_handler(text, start))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"metrics on {args.host}:{server.server_address[1]}", flush=True)
    time.sleep(args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
