#!/usr/bin/python3
"""Evaluates every dashboard, rule, adapter and KEDA expression against a real Prometheus started
by deploy/local/run.sh, and tests the runner itself.

run.sh starts two encoder and two decoder replicas on loopback (tests/deploy/standin: stand-ins
that print the address lines, answer grpc.health.v1 and serve the fixture exposition of every
metric in docs/operations.md, counters growing; the real binaries replace them in the
multi-replica test), plus one extra --scrape target (tests/deploy/exposition_server.py), its
Prometheus with the rules, and (--redis) a Redis passed to every replica as its slot store.
deploy/tools/check_queries.py must pass in --strict mode, and must fail on copies of the deploy
files broken in known ways. Then one encoder is killed: Prometheus must
see exactly that target down while the runner keeps going. Finally SIGTERM must stop the runner,
its replicas, its Prometheus and its Redis.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"
HERE = Path(__file__).resolve().parent


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def checker(prometheus, repo=REPO, timeout=45, strict=True):
    cmd = [PYTHON, str(REPO / "deploy/tools/check_queries.py"), "--prometheus", prometheus,
           "--repo", str(repo), "--timeout", str(timeout), "--expect_targets", "5"]
    if strict:
        cmd += ["--strict", "--require_metrics"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)


def query(prometheus, expr):
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)["data"]["result"]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class QueryCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="icae-deploy-queries."))
        cls.exposition = subprocess.Popen(
            [PYTHON, str(HERE / "exposition_server.py"), "--max_seconds", "300",
             "--file", str(HERE / "testdata/encoder.prom")], stdout=subprocess.PIPE, text=True)
        extra = cls.exposition.stdout.readline().split()[-1]
        cls.state = cls.tmp / "state"
        cmd = ["bash", str(REPO / "deploy/local/run.sh"), "--bin_dir", str(HERE / "standin"),
               "--encoders", "2", "--decoders", "2", "--scrape", f"icae-encoder={extra}",
               "--encoder_flag=--drain_seconds=0.2", "--decoder_flag=--drain_seconds=0.2",
               "--scrape_interval", "1s", "--state_dir", str(cls.state), "--exit_after", "240",
               "--start_timeout", "60", "--redis"]
        cls.runner_log = open(cls.tmp / "run.log", "w")
        cls.runner = subprocess.Popen(cmd, stdout=cls.runner_log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (cls.state / "ready").exists() or cls.runner.poll() is not None, 90,
                     "run.sh to become ready")
            if cls.runner.poll() is not None:
                raise AssertionError("run.sh exited:\n" + (cls.tmp / "run.log").read_text())
        except BaseException:
            cls.tearDownClass()
            raise
        cls.env = dict(line.split("=", 1) for line in
                       (cls.state / "addresses.env").read_text().splitlines())
        cls.prometheus = cls.env["PROMETHEUS_URL"]
        cls.prometheus_pid = int(cls.env["PROMETHEUS_PID"])

    @classmethod
    def tearDownClass(cls):
        for proc in (getattr(cls, "runner", None), cls.exposition):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_every_expression_evaluates_with_data(self):
        out = checker(self.prometheus)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("0 failed, 0 other problems", out.stdout)
        config = (self.state / "prometheus.yml").read_text()
        self.assertIn("job_name: 'icae-encoder'", config)
        self.assertIn("pod: 'icae-decoder-1'", config)
        for key in ("ICAE_ENCODER_TARGET", "ICAE_DECODER_TARGET"):
            self.assertRegex(self.env[key], r"^ipv4:127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$")
        # --redis: a Redis answering on the advertised address, passed to every replica.
        self.assertRegex(self.env["ICAE_SLOT_STORE"], r"^redis://127\.0\.0\.1:\d+$")
        port = int(self.env["ICAE_SLOT_STORE"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            self.assertEqual(conn.recv(64), b"+PONG\r\n")
        for key in ("ICAE_ENCODER_PIDS", "ICAE_DECODER_PIDS"):
            for pid in self.env[key].split(","):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                self.assertIn(f"--slot_store={self.env['ICAE_SLOT_STORE']}".encode(), args)

    def test_2_checker_fails_on_broken_expressions(self):
        mutations = [
            ("deploy/grafana/dashboards/icae-encoder.json", 'method=\\"Compress\\"',
             'method=\\"Compres\\"', "no series for"),
            ("deploy/grafana/dashboards/icae-decoder.json", "icae_decoder_batch_size_bucket",
             "icae_decoder_batch_sizes_bucket", "neither in docs/operations.md"),
            ("deploy/grafana/dashboards/icae-decoder.json", '"legendFormat": "{{finish_reason}}"',
             '"legendFormat": "{{reason}}"', "legend names labels ['reason']"),
            ("deploy/prometheus/rules/icae-encoder.rules.yml",
             "expr: job:icae_encoder_tokens:rate5m / job:icae_encoder_slots:rate5m",
             "expr: job:icae_encoder_tokens:rate5m / / job:icae_encoder_slots:rate5m",
             "error:"),
            ("deploy/k8s/prometheus-adapter/config.yaml", "by (le, <<.GroupBy>>)",
             "by (<<.GroupBy>>)", "empty result although every selector has data"),
        ]
        for path, old, new, expected in mutations:
            with self.subTest(path=path, new=new), tempfile.TemporaryDirectory() as repo:
                shutil.copytree(REPO / "deploy", Path(repo) / "deploy")
                shutil.copytree(REPO / "docs", Path(repo) / "docs")
                target = Path(repo) / path
                text = target.read_text()
                self.assertIn(old, text)
                target.write_text(text.replace(old, new, 1))
                out = checker(self.prometheus, repo=repo, timeout=0)
                self.assertEqual(out.returncode, 1, out.stdout)
                self.assertIn(expected, out.stdout)

    def test_3_a_killed_replica_is_seen_down(self):
        victim = int(self.env["ICAE_ENCODER_PIDS"].split(",")[0])
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: query(self.prometheus, 'up{job="icae-encoder"} == 0'), 20,
                 "Prometheus to see the encoder down")
        down = query(self.prometheus, 'up{job=~"icae-encoder|icae-decoder"} == 0')
        self.assertEqual([r["metric"]["pod"] for r in down], ["icae-encoder-0"])
        # Two stand-in encoders and the extra --scrape target; the recording rule may lag a cycle.
        def sums():
            return {r["metric"]["job"]: float(r["value"][1])
                    for r in query(self.prometheus, "job:icae_up:sum")}
        wait_for(lambda: sums() == {"icae-encoder": 2.0, "icae-decoder": 2.0}, 10,
                 f"job:icae_up:sum to count 2 encoders up (last {sums()})")
        self.assertIsNone(type(self).runner.poll(), "run.sh stopped when a replica died")

    def test_4_runner_stops_everything_on_sigterm(self):
        runner = type(self).runner
        runner.send_signal(signal.SIGTERM)
        self.assertEqual(runner.wait(timeout=30), 128 + signal.SIGTERM)
        pids = [self.prometheus_pid, int(self.env["ICAE_REDIS_PID"])] + [
            int(p) for key in ("ICAE_ENCODER_PIDS", "ICAE_DECODER_PIDS")
            for p in self.env[key].split(",")]
        wait_for(lambda: not any(alive(p) for p in pids), 10, "every child to exit")
        self.assertFalse((self.state / "ready").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
