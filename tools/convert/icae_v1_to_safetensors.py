#!/usr/bin/env python3
"""Converts a released ICAE v1 checkpoint (a ``torch.save`` pickle) into an adapter directory the
services load: ``adapter.safetensors`` (the LoRA A/B matrices and ``memory_token_embed.weight``,
under the ICAE module's key names) and ``adapter_config.json``.

    icae_v1_to_safetensors.py V1_CHECKPOINT OUT_DIR [--lora-alpha A] [--mem-size N] [--rate R]

The pickle is read with a restricted unpickler: tensors, storages and plain containers are
rebuilt; every other class it names (the ICAE module, transformers' and PEFT's modules, even
torch.nn's) becomes an inert stub that only keeps its attribute dictionary, so no code named by
the file runs and neither transformers nor PEFT is needed. A whole pickled module and a state dict
are both accepted. ``r`` and the target modules come from the tensors; ``lora_alpha`` (not in the
tensors) defaults to 32, the value of the released ICAE code, and ``mem_size`` to the memory table's
rows minus the three special rows (AE, LM, FT).

Needs Debian's python3-torch (``tools/setup.sh`` installs it).
"""

from __future__ import annotations

import argparse
import collections
import json
import pickle
import re
import struct
import sys
import types
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import torch

LORA_KEY = re.compile(
    r"^(?:icae\.)?base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+_proj)"
    r"\.lora_([AB])(?:\.default)?\.weight$")
MEMORY_KEY = "memory_token_embed.weight"

# What the unpickler may build for real: how torch rebuilds tensors and storages, and containers.
_ALLOWED = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"), ("copyreg", "_reconstructor"), ("builtins", "object"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
}


class Stub:
    """Stands for any class the checkpoint names; keeps the state it is given, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.stub_args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict, slots) form
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.stub_state = state


def _stub_class(module: str, name: str) -> type:
    return type(name, (Stub,), {"stub_origin": f"{module}.{name}"})


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and (name.endswith("Storage") or isinstance(getattr(torch, name, None),
                                                                         torch.dtype)):
            return super().find_class(module, name)
        return _stub_class(module, name)


def restricted_load(path: Path) -> Any:
    """torch.load with RestrictedUnpickler. (torch.load's own pickle_module argument is ignored
    by Debian's 1.13 unless weights_only, whose allow-list refuses any module class, so the
    pickle module that torch.serialization uses is swapped for the call.)"""
    restricted = types.ModuleType("pickle")
    restricted.__dict__.update(pickle.__dict__)
    restricted.Unpickler = RestrictedUnpickler
    restricted.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()
    original = torch.serialization.pickle
    torch.serialization.pickle = restricted
    try:
        return torch.load(path, map_location="cpu", pickle_module=restricted)
    finally:
        torch.serialization.pickle = original


def named_tensors(obj: Any, prefix: str = "", seen: set | None = None) -> Iterator[Tuple[str, torch.Tensor]]:
    """Every tensor reachable from ``obj`` with its state-dict name: modules through their
    ``_parameters`` / ``_buffers`` / ``_modules``, mappings through their keys."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield prefix.rstrip("."), obj
    elif isinstance(obj, collections.abc.Mapping):
        for key, value in obj.items():
            if isinstance(key, str):
                yield from named_tensors(value, f"{prefix}{key}.", seen)
    elif hasattr(obj, "__dict__"):
        state = vars(obj)
        found = False
        for part in ("_parameters", "_buffers", "_modules"):
            if isinstance(state.get(part), collections.abc.Mapping):
                found = True
                yield from named_tensors(state[part], prefix, seen)
        if not found:  # A plain object (e.g. a wrapper holding the state dict).
            for key, value in state.items():
                if not key.startswith("stub_"):
                    yield from named_tensors(value, f"{prefix}{key}.", seen)


def extract(checkpoint: Any) -> Dict[str, torch.Tensor]:
    """The adapter's tensors under the ICAE module's names."""
    out: Dict[str, torch.Tensor] = {}
    for name, tensor in named_tensors(checkpoint):
        match = LORA_KEY.match(name)
        if match:
            layer, block, proj, ab = match.groups()
            key = f"icae.base_model.model.model.layers.{layer}.{block}.{proj}.lora_{ab}.default.weight"
        elif name == MEMORY_KEY or name.endswith("." + MEMORY_KEY):
            key = MEMORY_KEY
        else:
            continue
        if key in out and not torch.equal(out[key], tensor):
            raise ValueError(f"two different tensors map to {key}")
        out[key] = tensor.detach().contiguous()
    if MEMORY_KEY not in out:
        raise ValueError("no memory_token_embed.weight in the checkpoint")
    if not any(LORA_KEY.match(k) for k in out):
        raise ValueError("no LoRA lora_A/lora_B weights in the checkpoint")
    return out


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(path: Path, tensors: Dict[str, torch.Tensor]) -> None:
    header: Dict[str, Any] = {"__metadata__": {"format": "pt", "converted_from": "icae-v1"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} is not a float dtype")
        data = t.cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def adapter_config(tensors: Dict[str, torch.Tensor], lora_alpha: float, mem_size: int | None,
                   rate: int) -> Dict[str, Any]:
    ranks = {t.shape[0] for k, t in tensors.items() if LORA_KEY.match(k) and ".lora_A." in k}
    if len(ranks) != 1:
        raise ValueError(f"LoRA ranks differ between modules: {sorted(ranks)}")
    targets = sorted({LORA_KEY.match(k).group(3) for k in tensors if LORA_KEY.match(k)})
    rows = tensors[MEMORY_KEY].shape[0]
    mem = mem_size if mem_size is not None else rows - 3
    if mem <= 0 or mem + 3 > rows:
        raise ValueError(f"memory_token_embed has {rows} rows: too few for mem_size {mem} + 3")
    r = ranks.pop()
    return {"format": "icae-v2-adapter", "converted_from": "icae-v1", "peft_type": "LORA",
            "r": r, "lora_alpha": lora_alpha, "target_modules": targets, "mem_size": mem,
            "mean_compression_rate": rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--lora-alpha", type=float, default=32.0)
    parser.add_argument("--mem-size", type=int, default=None)
    parser.add_argument("--rate", type=int, default=4)
    args = parser.parse_args()
    try:
        checkpoint = restricted_load(args.checkpoint)
        tensors = extract(checkpoint)
        config = adapter_config(tensors, args.lora_alpha, args.mem_size, args.rate)
    except (ValueError, pickle.UnpicklingError, RuntimeError, OSError) as error:
        print(f"icae_v1_to_safetensors: {args.checkpoint}: {error}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_safetensors(args.out_dir / "adapter.safetensors", tensors)
    (args.out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {args.out_dir}/adapter.safetensors ({len(tensors)} tensors: r {config['r']}, "
          f"{', '.join(config['target_modules'])}, mem_size {config['mem_size']}) and "
          f"adapter_config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
