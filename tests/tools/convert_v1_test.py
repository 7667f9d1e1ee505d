"""tools/convert/icae_v1_to_safetensors.py on checkpoints this test writes itself in the ICAE v1
layout (a torch.save pickle of the whole module: PEFT-wrapped Llama layers with lora_A/lora_B
.default Linear modules next to the frozen weights, and memory_token_embed as an nn.Embedding),
from the golden tiny adapter. The converted adapter must hold exactly the original tensors, and
the C++ compressor must make the same slots from it as from the original. A pickle that tries to
run code must not run it. Needs Debian's python3-torch (installed by tools/setup.sh): its absence
fails the test."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONVERTER = REPO / "tools/convert/icae_v1_to_safetensors.py"
TESTDATA = REPO / "tests/testdata"
ICAE_BIN = Path(os.environ["ICAE_BIN_DIR"]) / "icae"
PYTHON = "/usr/bin/python3"

# Written into a directory of its own and imported only by the writer: the converter runs where
# this module does not exist, as the released file's classes do not exist here.
V1_MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    class LoraLinear(nn.Module):  # PEFT's lora.Linear: base weight + lora_A/B ModuleDicts
        def __init__(self, base, a, b):
            super().__init__()
            self.weight = nn.Parameter(base, requires_grad=False)
            self.lora_A = nn.ModuleDict({"default": nn.Linear(a.shape[1], a.shape[0], bias=False)})
            self.lora_B = nn.ModuleDict({"default": nn.Linear(b.shape[1], b.shape[0], bias=False)})
            self.lora_A["default"].weight.data.copy_(a)
            self.lora_B["default"].weight.data.copy_(b)

    class Attention(nn.Module):
        def __init__(self, q, v):
            super().__init__()
            self.q_proj, self.v_proj = q, v

    class Layer(nn.Module):
        def __init__(self, attn):
            super().__init__()
            self.self_attn = attn

    class Inner(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = nn.ModuleList(layers)

    class Wrapper(nn.Module):
        def __init__(self, child, name):
            super().__init__()
            self.add_module(name, child)

    class ICAE(nn.Module):  # icae.base_model.model.model.layers.{i}...; memory_token_embed
        def __init__(self, layers, memory):
            super().__init__()
            self.icae = Wrapper(Wrapper(Wrapper(Inner(layers), "model"), "model"), "base_model")
            self.memory_token_embed = nn.Embedding(memory.shape[0], memory.shape[1])
            self.memory_token_embed.weight.data.copy_(memory)
            self.training_args = {"lr": 1e-4, "note": "not a tensor"}
''')


def read_safetensors(path: Path):
    import torch
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        assert entry["dtype"] == "F32", entry
        raw = bytearray(data[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=torch.float32).reshape(entry["shape"]).clone()
    return out


class ConvertV1Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        try:
            import torch  # noqa: F401
        except ImportError as error:
            raise AssertionError("python3-torch is not installed (tools/setup.sh installs it)") \
                from error
        cls.tmp = tempfile.TemporaryDirectory(prefix="icae-v1-")
        cls.dir = Path(cls.tmp.name)
        cls.original = read_safetensors(TESTDATA / "tiny-icae/adapter.safetensors")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def write_v1(self, path: Path, state_dict: bool = False) -> None:
        """The v1 pickle of the tiny adapter, written by a process that has the v1 classes."""
        module_dir = self.dir / "v1code"
        module_dir.mkdir(exist_ok=True)
        (module_dir / "icae_v1_model.py").write_text(V1_MODULE)
        script = textwrap.dedent(f'''
            import sys, torch
            sys.path.insert(0, {str(module_dir)!r})
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from convert_v1_test import read_safetensors
            from icae_v1_model import *
            t = read_safetensors(__import__("pathlib").Path({str(TESTDATA / "tiny-icae/adapter.safetensors")!r}))
            key = "icae.base_model.model.model.layers.{{}}.self_attn.{{}}.lora_{{}}.default.weight"
            torch.manual_seed(0)
            layers = []
            for i in range(2):
                projs = []
                for p in ("q_proj", "v_proj"):
                    a, b = t[key.format(i, p, "A")], t[key.format(i, p, "B")]
                    projs.append(LoraLinear(torch.randn(b.shape[0], a.shape[1]), a, b))
                layers.append(Layer(Attention(*projs)))
            model = ICAE(layers, t["memory_token_embed.weight"])
            torch.save(model.state_dict() if {state_dict!r} else model, {str(path)!r})
        ''')
        subprocess.run([PYTHON, "-c", script], check=True, cwd=self.dir)

    def convert(self, checkpoint: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
        # Run from a directory where the v1 classes cannot be imported.
        return subprocess.run([PYTHON, str(CONVERTER), str(checkpoint), str(out), *extra],
                              capture_output=True, text=True, cwd="/")

    def test_whole_module_and_state_dict_convert_to_the_original_tensors(self) -> None:
        for state_dict in (False, True):
            with self.subTest(state_dict=state_dict):
                checkpoint = self.dir / f"icae_v1_{state_dict}.pt"
                out = self.dir / f"converted_{state_dict}"
                self.write_v1(checkpoint, state_dict)
                result = self.convert(checkpoint, out, "--lora-alpha", "32")
                self.assertEqual(result.returncode, 0, result.stderr)
                converted = read_safetensors(out / "adapter.safetensors")
                self.assertEqual(sorted(converted), sorted(self.original))
                for name, tensor in self.original.items():
                    self.assertTrue(bool((converted[name] == tensor).all()), name)
                config = json.loads((out / "adapter_config.json").read_text())
                self.assertEqual(config["r"], 8)
                self.assertEqual(config["lora_alpha"], 32)
                self.assertEqual(config["target_modules"], ["q_proj", "v_proj"])
                self.assertEqual(config["mem_size"], 4)

    def test_the_compressor_makes_the_same_slots_from_the_converted_adapter(self) -> None:
        checkpoint = self.dir / "icae_v1_slots.pt"
        out = self.dir / "converted_slots"
        self.write_v1(checkpoint)
        self.assertEqual(self.convert(checkpoint, out, "--lora-alpha", "32").returncode, 0)
        slots = {}
        for name, adapter in (("original", TESTDATA / "tiny-icae"), ("converted", out)):
            path = self.dir / f"{name}.slots.safetensors"
            result = subprocess.run(
                [str(ICAE_BIN), "compress", "--model", str(TESTDATA / "tiny-llama"), "--adapter",
                 str(adapter), "--token_ids", "5,17,42,99,3,250,8,61,77,300,12,13,14,15,16,40",
                 "--out", str(path), "--threads", "1"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stderr)
            slots[name] = read_safetensors(path)["slots"]
        self.assertEqual(tuple(slots["original"].shape), (4, 64))
        self.assertTrue(bool((slots["original"] == slots["converted"]).all()))

    def test_a_pickle_that_runs_code_does_not_run_it(self) -> None:
        marker = self.dir / "PWNED"
        evil = self.dir / "evil.pt"
        script = textwrap.dedent(f'''
            import os, torch
            class Evil:
                def __reduce__(self):
                    return (os.system, ("touch {marker}",))
            torch.save({{"payload": Evil(), "memory_token_embed.weight": torch.zeros(7, 4)}}, {str(evil)!r})
        ''')
        subprocess.run([PYTHON, "-c", script], check=True)
        result = self.convert(evil, self.dir / "evil_out")
        self.assertFalse(marker.exists(), "the pickle ran code")
        self.assertEqual(result.returncode, 1)
        self.assertIn("no LoRA", result.stderr)

    def test_not_a_checkpoint_is_a_clear_error(self) -> None:
        junk = self.dir / "junk.pt"
        junk.write_bytes(b"this is not a pickle at all")
        result = self.convert(junk, self.dir / "junk_out")
        self.assertEqual(result.returncode, 1)
        self.assertIn("junk.pt", result.stderr)


if __name__ == "__main__":
    sys.exit(unittest.main())
