"""Copies the generated icae.v1 modules into the built package (icae_client/_generated/icae/v1/).

They come from ICAE_PYTHON_STUBS, else <repository>/build/python (what `make` generates); the
build fails with a clear message when neither holds them. Everything else is in pyproject.toml.
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def stubs_dir() -> Path:
    candidates = [os.environ.get("ICAE_PYTHON_STUBS", ""), str(HERE.parents[1] / "build" / "python")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "icae" / "v1" / "encoder_pb2.py").is_file():
            return Path(candidate)
    raise SystemExit("icae-client: the generated icae.v1 modules were not found; run `make` (or "
                     "`cmake --build build --target icae_python_stubs`) first, or set "
                     "ICAE_PYTHON_STUBS to the directory holding icae/v1/")


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        source = stubs_dir() / "icae" / "v1"
        target = Path(self.build_lib) / "icae_client" / "_generated" / "icae" / "v1"
        target.mkdir(parents=True, exist_ok=True)
        for init in (target.parent.parent, target.parent, target):
            (init / "__init__.py").touch()
        for f in sorted(source.iterdir()):
            if f.suffix in (".py", ".pyi"):
                shutil.copy2(f, target / f.name)


setup(cmdclass={"build_py": BuildWithStubs})
