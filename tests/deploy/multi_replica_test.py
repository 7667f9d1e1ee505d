#!/usr/bin/python3
"""Multi-replica test with the real services: deploy/local/run.sh starts 2 encoders, 2 decoders,
Prometheus and a Redis as their shared slot store (--redis); traffic goes through the `icae` client
with round_robin over the replicas (every computed span is written to the store); one encoder
is killed while calls are running and every call must still succeed (the client retries
UNAVAILABLE on the other replica); Prometheus must show the recorded series, every dashboard and
rule expression must evaluate (deploy/tools/check_queries.py), and the dead replica must show as
down.

  multi_replica_test.py BIN_DIR

Fails (exit 1) when the binaries are not built or the demo model (models/demo/base and its
adapter models/demo/icae, both committed) is absent: make builds the binaries before ctest runs,
so neither can be missing from a correct set-up.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"
BIN_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build/bin"
MODEL = REPO / "models/demo/base"
ADAPTER = REPO / "models/demo/icae"
DOCUMENTS = [
    "The encoder compresses every span of text into memory slots, four tokens to a slot.",
    "A decoder that hosts the frozen model generates its answer from the slots and a prompt.",
    "Replicas sit behind a headless service and the clients balance calls round robin.",
    "When a replica drains it answers NOT_SERVING and clients move to the other replicas.",
]


def missing_reason():
    for name in ("icae-encoder", "icae-decoder", "icae"):
        if not os.access(BIN_DIR / name, os.X_OK):
            return f"{BIN_DIR / name} not built"
    if not (MODEL / "config.json").exists():
        return f"no demo model in {MODEL}"
    if not (ADAPTER / "adapter.safetensors").exists():
        return f"no adapter in {ADAPTER}"
    return None


def query(prometheus, expr):
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)["data"]["result"]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class MultiReplicaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="icae-multi-replica."))
        cls.state = cls.tmp / "state"
        cmd = ["bash", str(REPO / "deploy/local/run.sh"), "--bin_dir", str(BIN_DIR),
               "--encoders", "2", "--decoders", "2", "--model", str(MODEL),
               "--adapter", str(ADAPTER), "--scrape_interval", "1s",
               "--encoder_flag=--drain_seconds=2", "--decoder_flag=--drain_seconds=2",
               "--encoder_flag=--threads=1", "--decoder_flag=--threads=1",
               "--state_dir", str(cls.state), "--start_timeout", "120", "--exit_after", "280",
               "--redis"]
        cls.log = open(cls.tmp / "run.log", "w")
        cls.runner = subprocess.Popen(cmd, stdout=cls.log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (cls.state / "ready").exists() or cls.runner.poll() is not None,
                     150, "run.sh to become ready")
            if cls.runner.poll() is not None:
                raise AssertionError("run.sh exited:\n" + (cls.tmp / "run.log").read_text())
        except BaseException:
            cls.tearDownClass()
            raise
        cls.env = dict(line.split("=", 1) for line in
                       (cls.state / "addresses.env").read_text().splitlines())

    @classmethod
    def tearDownClass(cls):
        if cls.runner.poll() is None:
            cls.runner.send_signal(signal.SIGTERM)
            try:
                cls.runner.wait(timeout=40)
            except subprocess.TimeoutExpired:
                cls.runner.kill()
                cls.runner.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def compress(self, text, out):
        return subprocess.run(
            [str(BIN_DIR / "icae"), "compress", "--encoder", self.env["ICAE_ENCODER_TARGET"],
             "--text", text, "--out", str(out)], capture_output=True, text=True, timeout=120)

    def generate(self, slots):
        return subprocess.run(
            [str(BIN_DIR / "icae"), "generate", "--decoder", self.env["ICAE_DECODER_TARGET"],
             "--slots", str(slots), "--prompt", "What is this about?", "--max_new_tokens", "8"],
            capture_output=True, text=True, timeout=120)

    def test_1_traffic_through_every_replica_set(self):
        for i, text in enumerate(DOCUMENTS):
            slots = self.tmp / f"doc{i}.safetensors"
            out = self.compress(text, slots)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertGreater(slots.stat().st_size, 0)
            out = self.generate(slots)
            self.assertEqual(out.returncode, 0, out.stderr)
        prometheus = self.env["PROMETHEUS_URL"]

        def served(svc, method):
            result = query(prometheus, f'sum(icae_{svc}_requests_total{{method="{method}",'
                                       f'code="OK"}})')
            return float(result[0]["value"][1]) if result else 0.0

        wait_for(lambda: served("encoder", "Compress") == len(DOCUMENTS), 20,
                 "every Compress to be counted once")
        wait_for(lambda: served("decoder", "Generate") + served("decoder", "GenerateStream")
                 == len(DOCUMENTS), 20, "every generation to be counted once")

        def store(series):
            result = query(prometheus, f"sum({series})")
            return float(result[0]["value"][1]) if result else 0.0

        # Distinct documents: each missed the store once and was written back (in the background).
        self.assertTrue(self.env["ICAE_SLOT_STORE"].startswith("redis://127.0.0.1:"))
        wait_for(lambda: store('icae_encoder_store_lookups_total{result="miss"}') == len(DOCUMENTS)
                 and store('icae_encoder_store_writes_total{result="ok"}') == len(DOCUMENTS), 20,
                 "every span to be looked up in and written to the slot store")
        for series in ("job:icae_encoder_requests:rate5m", "job:icae_encoder_tokens:rate5m",
                       "job:icae_encoder_compression:ratio_rate5m",
                       "job:icae_decoder_generation_tokens:rate5m",
                       "job:icae_decoder_time_to_first_token_seconds:p99_5m", "job:icae_up:sum"):
            wait_for(lambda: query(prometheus, series), 20, f"{series} to have data")
        out = subprocess.run(
            [PYTHON, str(REPO / "deploy/tools/check_queries.py"), "--prometheus", prometheus,
             "--expect_targets", "4", "--timeout", "30"], capture_output=True, text=True,
            timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_2_killing_an_encoder_mid_run_loses_nothing(self):
        victim = int(self.env["ICAE_ENCODER_PIDS"].split(",")[0])
        results, started = [], threading.Event()

        def traffic():
            for i in range(12):
                if i == 3:
                    started.set()
                results.append(self.compress(DOCUMENTS[i % len(DOCUMENTS)],
                                             self.tmp / f"kill{i}.safetensors"))

        worker = threading.Thread(target=traffic)
        worker.start()
        started.wait(timeout=120)
        os.kill(victim, signal.SIGKILL)
        worker.join(timeout=240)
        self.assertEqual(len(results), 12)
        for out in results:
            self.assertEqual(out.returncode, 0, out.stderr)
        prometheus = self.env["PROMETHEUS_URL"]
        wait_for(lambda: query(prometheus, 'up{job="icae-encoder"} == 0'), 20,
                 "Prometheus to see the killed encoder down")
        wait_for(lambda: [float(r["value"][1]) for r in
                          query(prometheus, 'job:icae_up:sum{job="icae-encoder"}')] == [1.0],
                 20, "one encoder up")

    def test_3_sigterm_stops_everything(self):
        runner = type(self).runner
        runner.send_signal(signal.SIGTERM)
        self.assertEqual(runner.wait(timeout=40), 128 + signal.SIGTERM)
        pids = [int(self.env["PROMETHEUS_PID"]), int(self.env["ICAE_REDIS_PID"])] + [
            int(p) for key in ("ICAE_ENCODER_PIDS", "ICAE_DECODER_PIDS")
            for p in self.env[key].split(",")]

        def alive(pid):
            try:
                os.kill(pid, 0)
                return True
            except ProcessLookupError:
                return False

        wait_for(lambda: not any(alive(p) for p in pids), 10, "every child to exit")


if __name__ == "__main__":
    reason = missing_reason()
    if reason:
        print(f"FAIL: {reason}")
        sys.exit(1)
    unittest.main(argv=sys.argv[:1], verbosity=2)
