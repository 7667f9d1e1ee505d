"""grpc-js interop: the real icae-encoder and icae-decoder (demo model, loopback) driven by an
independent gRPC implementation, Node's @grpc/grpc-js loading protos/ with @grpc/proto-loader
(tests/clients/grpcjs/interop.js). The npm packages come from tools/setup.sh
(ICAE_GRPCJS_MODULES); a missing node or package fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

from service_process import ServiceProcess

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ["ICAE_BIN_DIR"])
MODULES = Path(os.environ["ICAE_GRPCJS_MODULES"])


class GrpcJsInteropTest(unittest.TestCase):
    def test_grpcjs_drives_both_services(self) -> None:
        node = shutil.which("node")
        self.assertIsNotNone(node, "node is not installed (tools/setup.sh installs it)")
        self.assertTrue((MODULES / "@grpc" / "grpc-js").is_dir(),
                        f"{MODULES}: no @grpc/grpc-js (tools/setup.sh runs npm ci there)")
        model = ["--model", str(REPO / "models/demo/base"), "--adapter",
                 str(REPO / "models/demo/icae"), "--threads", "1", "--drain_seconds", "1"]
        encoder = ServiceProcess(BIN_DIR / "icae-encoder", model, "encoder")
        decoder = ServiceProcess(BIN_DIR / "icae-decoder", model, "decoder")
        try:
            encoder.wait_listening()
            decoder.wait_listening()
            out = subprocess.run(
                [node, str(REPO / "tests/clients/grpcjs/interop.js"), "--encoder",
                 encoder.address, "--decoder", decoder.address, "--protos", str(REPO / "protos")],
                env={**os.environ, "NODE_PATH": str(MODULES)}, capture_output=True, text=True,
                timeout=150)
            print(out.stdout, end="")
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr + "\n--- encoder ---\n" +
                             encoder.log() + "\n--- decoder ---\n" + decoder.log())
            self.assertIn("interop: 9 checks passed", out.stdout)
        finally:
            encoder.close()
            decoder.close()


if __name__ == "__main__":
    sys.exit(unittest.main())
