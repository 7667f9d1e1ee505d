"""Locates the generated protobuf/gRPC modules (icae.v1.*_pb2, *_pb2_grpc, *.pyi).

The modules are generated at build time (CMake target ``icae_python_stubs``) into
``<build dir>/python/icae/v1/``; they are never committed. An installed package carries them in
``icae_client/_generated/`` (copied there by setup.py). They are found, in this order:

1. the directory named by the ``ICAE_PYTHON_STUBS`` environment variable;
2. the installed package's ``_generated`` directory;
3. anything already importable as ``icae.v1`` (e.g. ``PYTHONPATH=build/python``);
4. ``<repository>/build/python`` (the default build directory of ``make``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

STUBS_ENV = "ICAE_PYTHON_STUBS"


def _has_stubs(directory: str) -> bool:
    return (Path(directory) / "icae" / "v1" / "encoder_pb2.py").is_file()


def _importable() -> bool:
    try:
        return importlib.util.find_spec("icae.v1.encoder_pb2") is not None
    except ImportError:  # no "icae" package at all
        return False


def _ensure_importable() -> None:
    env = os.environ.get(STUBS_ENV, "")
    if env:
        if not _has_stubs(env):
            raise ImportError(f"{STUBS_ENV}={env} holds no icae/v1/encoder_pb2.py; build the "
                              "stubs with `cmake --build <build dir> --target icae_python_stubs`")
        if env not in sys.path:
            sys.path.insert(0, env)
        return
    packaged = str(Path(__file__).resolve().parent / "_generated")
    if _has_stubs(packaged):
        if packaged not in sys.path:
            sys.path.insert(0, packaged)
        return
    if _importable():
        return
    default = str(Path(__file__).resolve().parents[3] / "build" / "python")
    if not _has_stubs(default):
        raise ImportError(
            "icae_client cannot find the generated icae.v1 protobuf modules. Build them with "
            "`cmake --build build --target icae_python_stubs` (or `make`), then set "
            f"{STUBS_ENV}=<build dir>/python or put that directory on PYTHONPATH.")
    sys.path.insert(0, default)


_ensure_importable()

from icae.v1 import decoder_pb2, decoder_pb2_grpc  # noqa: E402
from icae.v1 import encoder_pb2, encoder_pb2_grpc  # noqa: E402
from icae.v1 import slots_pb2, tensor_pb2  # noqa: E402

__all__ = ["decoder_pb2", "decoder_pb2_grpc", "encoder_pb2", "encoder_pb2_grpc", "slots_pb2",
           "tensor_pb2"]
