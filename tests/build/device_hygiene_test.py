#!/usr/bin/env python3
"""CUDA path hygiene, checked on a CPU machine (docs/gpu.md).

The model code must keep every tensor on the model's device: a hidden host copy or a raw host
pointer on the CUDA path would only show up on a GPU. This test lists every place in common/model
that names the CPU or takes a raw data pointer and compares it with the reviewed list below; a new
one fails the test until it is reviewed and added here with its reason.
"""
import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PATTERN = re.compile(r"kCPU|\.cpu\(\)|data_ptr|is_cpu\(\)")

# file -> number of matching lines, each with the reason it is safe on the CUDA path.
REVIEWED = {
    # Sampling is host work by design: DecodeLogits hands the engine's sampler CPU float logits,
    # one [vocab] row per sequence per step.
    "common/model/generate.cc": 1,
    "common/model/sequence.cc": 2,
    # The CPU kernels run only when CpuKernelApplies() (a CPU tensor, no autograd); Data<T> is
    # called only behind it (RowKernelApplies); CausalAttend's query indices and key mask are
    # brought to the host only on its kernel path, behind CpuKernelApplies.
    "common/model/ops.cc": 11,
    # The shared prefix's storage pointers, read only on the CPU-kernel path (the residual
    # stream's aliasing checks use is_alias_of, which reads nothing).
    "common/model/transformer.cc": 8,
    # The default Runtime (the CPU unless --device resolves to CUDA).
    "common/model/runtime_options.h": 1,
    # Writing tensors to files goes through the host.
    "common/model/tensor_io.cc": 2,
    "common/model/weights.cc": 1,
}


def main() -> int:
    found = collections.Counter()
    where = collections.defaultdict(list)
    for path in sorted((ROOT / "common/model").rglob("*")):
        if path.suffix not in (".cc", ".h") or "kernels" in path.parts:
            continue  # The kernels take host pointers by definition and never see a CUDA tensor.
        rel = str(path.relative_to(ROOT))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//", 1)[0]
            if PATTERN.search(code):
                found[rel] += 1
                where[rel].append(f"{rel}:{number}: {line.strip()}")
    failures = []
    for rel in sorted(set(found) | set(REVIEWED)):
        if found[rel] != REVIEWED.get(rel, 0):
            failures.append(f"{rel}: {found[rel]} host references, {REVIEWED.get(rel, 0)} reviewed")
            failures.extend("  " + w for w in where[rel])
    if failures:
        print("FAIL: host references in common/model changed; review them for the CUDA path and "
              "update tests/build/device_hygiene_test.py:")
        print("\n".join(failures))
        return 1
    print(f"ok: {sum(found.values())} reviewed host references in {len(found)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
