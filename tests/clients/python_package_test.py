"""The Python client as a package: `pip install --no-build-isolation ./clients/python` into a fresh
venv (Debian's grpcio/protobuf/numpy through --system-site-packages; no network), then the RAG
example run with that venv's python from outside the repository, against the real services with
the demo model. The example must import the installed package (with its own copy of the
generated icae.v1 modules), not the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from service_process import demo_services

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ["ICAE_BIN_DIR"])
STUBS = os.environ["ICAE_PYTHON_STUBS"]


class PythonPackageTest(unittest.TestCase):
    def test_pip_install_into_a_fresh_venv_and_run_the_example(self) -> None:
        with tempfile.TemporaryDirectory(prefix="icae-venv-") as tmp:
            tmp = Path(tmp)
            source = tmp / "src"  # a copy: the build writes build/ and *.egg-info beside setup.py
            shutil.copytree(REPO / "clients/python", source,
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            venv = tmp / "venv"
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                           check=True)
            python = venv / "bin" / "python"
            env = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "ICAE_PYTHON_STUBS")}
            install = subprocess.run(
                [str(python), "-m", "pip", "install", "--no-build-isolation", "--no-index",
                 "--disable-pip-version-check", str(source)],
                env={**env, "ICAE_PYTHON_STUBS": STUBS}, capture_output=True, text=True,
                timeout=300)
            self.assertEqual(install.returncode, 0, install.stdout + install.stderr)

            # Installed: importable from anywhere, typed, with its generated modules inside, and
            # without ICAE_PYTHON_STUBS or PYTHONPATH.
            probe = subprocess.run(
                [str(python), "-c",
                 "import icae_client, pathlib, icae.v1.encoder_pb2 as e; "
                 "p = pathlib.Path(icae_client.__file__).parent; "
                 "print(p); print(e.__file__); print((p / 'py.typed').is_file()); "
                 "print(icae_client.EncoderClient.compress.__doc__ is not None)"],
                env=env, capture_output=True, text=True, cwd=tmp)
            self.assertEqual(probe.returncode, 0, probe.stderr)
            package, generated, typed, documented = probe.stdout.split()
            self.assertTrue(package.startswith(str(venv)), package)
            self.assertTrue(generated.startswith(package + "/_generated/"), generated)
            self.assertEqual((typed, documented), ("True", "True"))

            with demo_services(BIN_DIR, REPO) as (encoder, decoder):
                example = shutil.copy(REPO / "clients/python/examples/rag.py", tmp / "rag.py")
                run = subprocess.run(
                    [str(python), example, "--encoder", encoder.address, "--decoder",
                     decoder.address, "--max-new-tokens", "8"],
                    env=env, capture_output=True, text=True, timeout=120, cwd=tmp)
                print(run.stdout, end="")
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertIn("Q:", run.stdout)


if __name__ == "__main__":
    sys.exit(unittest.main())
