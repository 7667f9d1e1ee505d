#!/usr/bin/python3
"""Evaluates every dashboard, rule, adapter and KEDA expression against a real Prometheus.

Starts tests/deploy/exposition_server.py (the fixture expositions: every metric of
docs/operations.md, counters growing) as two encoder and two decoder targets, then
deploy/local/run.sh with --encoders 0 --decoders 0 and those targets, so the runner's Prometheus
configuration, rule loading and start-up are the ones under test. deploy/tools/check_queries.py then
has to pass in --strict mode, and has to fail on copies of the deploy files broken in known ways.
Finally SIGTERM must stop the runner and its Prometheus.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
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
           "--repo", str(repo), "--timeout", str(timeout), "--expect_targets", "4"]
    if strict:
        cmd += ["--strict", "--require_metrics"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)


class QueryCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="icae-deploy-queries."))
        data = HERE / "testdata"
        cls.exposition = subprocess.Popen(
            [PYTHON, str(HERE / "exposition_server.py"), "--max_seconds", "300",
             "--file", str(data / "encoder.prom"), "--file", str(data / "encoder.prom"),
             "--file", str(data / "decoder.prom"), "--file", str(data / "decoder.prom")],
            stdout=subprocess.PIPE, text=True)
        addresses = [cls.exposition.stdout.readline().split()[-1] for _ in range(4)]
        jobs = ["icae-encoder", "icae-encoder", "icae-decoder", "icae-decoder"]
        cls.state = cls.tmp / "state"
        cmd = ["bash", str(REPO / "deploy/local/run.sh"), "--encoders", "0", "--decoders", "0",
               "--scrape_interval", "1s", "--state_dir", str(cls.state), "--exit_after", "240"]
        for job, address in zip(jobs, addresses):
            cmd += ["--scrape", f"{job}={address}"]
        cls.runner_log = open(cls.tmp / "run.log", "w")
        cls.runner = subprocess.Popen(cmd, stdout=cls.runner_log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (cls.state / "ready").exists() or cls.runner.poll() is not None, 60,
                     "run.sh to become ready")
            if cls.runner.poll() is not None:
                raise AssertionError("run.sh exited:\n" + (cls.tmp / "run.log").read_text())
        except BaseException:
            cls.tearDownClass()
            raise
        env = dict(line.split("=", 1) for line in
                   (cls.state / "addresses.env").read_text().splitlines())
        cls.prometheus = env["PROMETHEUS_URL"]
        cls.prometheus_pid = int(env["PROMETHEUS_PID"])

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
        self.assertIn("pod: 'icae-decoder-x3'", config)

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

    def test_3_runner_stops_everything_on_sigterm(self):
        runner = type(self).runner
        runner.send_signal(signal.SIGTERM)
        self.assertEqual(runner.wait(timeout=30), 128 + signal.SIGTERM)

        def gone(pid):
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True

        wait_for(lambda: gone(self.prometheus_pid), 10, "Prometheus to exit")
        self.assertFalse((self.state / "ready").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
