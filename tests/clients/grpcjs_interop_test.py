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

from service_process import demo_services

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ["ICAE_BIN_DIR"])
MODULES = Path(os.environ["ICAE_GRPCJS_MODULES"])


class GrpcJsInteropTest(unittest.TestCase):
    def test_grpcjs_drives_both_services(self) -> None:
        node = shutil.which("node")
        self.assertIsNotNone(node, "node is not installed (tools/setup.sh installs it)")
        self.assertTrue((MODULES / "@grpc" / "grpc-js").is_dir(),
                        f"{MODULES}: no @grpc/grpc-js (tools/setup.sh runs npm ci there)")
        with demo_services(BIN_DIR, REPO) as (encoder, decoder):
            out = subprocess.run(
                [node, str(REPO / "tests/clients/grpcjs/interop.js"), "--encoder",
                 encoder.address, "--decoder", decoder.address, "--protos", str(REPO / "protos")],
                env={**os.environ, "NODE_PATH": str(MODULES)}, capture_output=True, text=True,
                timeout=150)
            print(out.stdout, end="")
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr + "\n--- encoder ---\n" +
                             encoder.log() + "\n--- decoder ---\n" + decoder.log())
            self.assertIn("interop: 9 checks passed", out.stdout)


if __name__ == "__main__":
    sys.exit(unittest.main())
