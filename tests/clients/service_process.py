"""Test helpers: a real icae service process on 127.0.0.1:0, safetensors and metrics readers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """u64 little-endian header length N, N bytes of JSON header, then the raw data."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[base + begin:base + end],
                              dtype=_SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return tensors


class ServiceProcess:
    """Starts ``binary`` with ``args`` plus ``--listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0``
    and reads the ``listening on`` / ``metrics on`` lines from its stdout. stderr goes to a file
    shown by ``log()`` when a test fails."""

    def __init__(self, binary: Path, args: List[str], name: str) -> None:
        self.name = name
        self._log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [str(binary), *args, "--listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._terminated = False
        self.address: Optional[str] = None
        self.metrics_address: Optional[str] = None
        self._lines_read = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = re.match(r"(listening|metrics) on (\S+)$", line.strip())
            if match and match.group(1) == "listening":
                self.address = match.group(2)
            elif match:
                self.metrics_address = match.group(2)
            if self.address and self.metrics_address:
                self._lines_read.set()
        self._lines_read.set()  # EOF: the process ended

    def wait_listening(self, timeout: float = 30.0) -> str:
        if not self._lines_read.wait(timeout) or not self.address or not self.metrics_address:
            raise RuntimeError(f"{self.name} printed no listening/metrics line within {timeout} s "
                               f"(exit code {self.process.poll()}):\n{self.log()}")
        return self.address

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=10) as r:
            return r.read().decode()

    def counter(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        total = 0.0
        for line in self.metrics().splitlines():
            match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            sample = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(sample.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    def terminate(self) -> None:
        """Sends SIGTERM once (the service drains, then exits 0; a second SIGTERM would end the
        drain at once)."""
        if self.process.poll() is None and not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the replica vanishes without draining."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout`` s. Returns the exit code."""
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log.name)


def wait_for(predicate, timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


@contextlib.contextmanager
def demo_services(bin_dir: Path, repo: Path):
    """icae-encoder and icae-decoder with the demo model (models/demo, which has a tokenizer),
    listening; yields (encoder, decoder) and stops both on exit."""
    model = ["--model", str(repo / "models/demo/base"), "--adapter", str(repo / "models/demo/icae"),
             "--threads", "1", "--drain_seconds", "1"]
    encoder = ServiceProcess(bin_dir / "icae-encoder", model, "encoder")
    decoder = ServiceProcess(bin_dir / "icae-decoder", model, "decoder")
    try:
        encoder.wait_listening()
        decoder.wait_listening()
        yield encoder, decoder
    finally:
        encoder.close()
        decoder.close()
