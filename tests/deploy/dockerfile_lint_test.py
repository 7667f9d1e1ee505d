#!/usr/bin/python3
"""Lints deploy/docker/*.Dockerfile with deploy/tools/lint_dockerfile.py (no Docker engine or
hadolint here), checks what each variant must be, and shows the linter failing on Dockerfiles
broken in known ways."""

import re
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy/tools"))
import contract as contract_lib  # noqa: E402
import lint_dockerfile  # noqa: E402

DOCKER = REPO / "deploy/docker"
CPU = DOCKER / "cpu.Dockerfile"
CUDA = DOCKER / "cuda.Dockerfile"
CONTRACT = contract_lib.Contract(REPO / "docs/operations.md")
MAKEFILE = (REPO / "Makefile").read_text()


def lint_text(text, ignore=None):
    if ignore is None:
        ignore = (DOCKER / "cpu.Dockerfile.dockerignore").read_text()
    return lint_dockerfile.lint(text, "cpu.Dockerfile", ignore, CONTRACT, MAKEFILE,
                                lint_dockerfile.k8s_run_as_user(REPO))


class DockerfileTest(unittest.TestCase):
    def test_dockerfiles_pass(self):
        self.assertEqual(sorted(p.name for p in DOCKER.glob("*.Dockerfile")),
                         ["cpu.Dockerfile", "cuda.Dockerfile"])
        for path in (CPU, CUDA):
            with self.subTest(path=path.name):
                self.assertEqual(lint_dockerfile.lint_file(path), [])

    def test_cpu_variant_is_debian_12_built_by_make(self):
        stages = {s for s in re.findall(r"^FROM (\S+)", CPU.read_text(), re.M)}
        self.assertEqual(stages, {"${DEBIAN_IMAGE}", "runtime"})
        self.assertRegex(CPU.read_text(), r"ARG DEBIAN_IMAGE=debian:12(\.\d+)?(-slim)?\n")
        self.assertIn("make build", CPU.read_text())

    def test_cuda_variant_uses_official_cuda_and_libtorch(self):
        text = CUDA.read_text()
        self.assertRegex(text, r"ARG CUDA_DEVEL_IMAGE=nvidia/cuda:11\.7\.\d+-cudnn8-devel-")
        url = re.search(r"ARG LIBTORCH_URL=(\S+)", text).group(1)
        # LibTorch 1.13.1 (the project's LibTorch), C++11 ABI (Debian's gRPC), CUDA 11.7 (the
        # toolkit of the CUDA image).
        for part in ("1.13.1", "cxx11-abi", "cu117"):
            self.assertIn(part, url)
        cuda = re.search(r"nvidia/cuda:(\d+\.\d+)", text).group(1)
        self.assertIn(f"COPY --from=cuda /usr/local/cuda-{cuda} /usr/local/cuda", text)
        self.assertIn("sha256sum -c", text)
        self.assertIn("NVIDIA_VISIBLE_DEVICES", text)
        self.assertIn("--device=cuda", text)


MUTATIONS = [
    ("root user", ("USER 10001:10001", "USER root"), "USER root is root"),
    ("no user", ("USER 10001:10001\n", ""), "no USER (runs as root)"),
    ("latest tag", ("ARG DEBIAN_IMAGE=debian:12.8-slim", "ARG DEBIAN_IMAGE=debian:latest"),
     "is not pinned"),
    ("untagged image", ("ARG DEBIAN_IMAGE=debian:12.8-slim", "ARG DEBIAN_IMAGE=debian"),
     "is not pinned"),
    ("unnamed stage", ("FROM ${DEBIAN_IMAGE} AS build", "FROM ${DEBIAN_IMAGE}"),
     "FROM without a stage name"),
    ("silent HEALTHCHECK NONE",
     ("# No Docker HEALTHCHECK: health is grpc.health.v1 on the gRPC port, probed natively by "
      "Kubernetes\n# (deploy/k8s); the image carries no gRPC health client for Docker to run.\n",
      ""), "HEALTHCHECK NONE without a comment"),
    ("wrong port", ('"--listen=0.0.0.0:50051"', '"--listen=0.0.0.0:50053"'),
     "is not port 50051"),
    ("port not exposed", ("EXPOSE 50052 9092", "EXPOSE 50052"),
     "port 9092 (metrics) not in EXPOSE"),
    ("unknown flag", ('"--model=/models/demo/base", "--adapter', '"--modle=/models/demo/base", "--adapter'),
     "CMD flags ['modle'] are not in docs/operations.md"),
    ("shell-form entrypoint", ('ENTRYPOINT ["/opt/icae/bin/icae-encoder"]',
                               "ENTRYPOINT /opt/icae/bin/icae-encoder"), "not in exec"),
    ("models baked in", ("COPY . .", "COPY . .\nCOPY models/demo /models/demo"),
     "copies models into the image"),
    ("no make build", ("make build BUILD_DIR=build", "cmake --build build"),
     "does not run `make build`"),
    ("recommends", ("apt-get install -y --no-install-recommends make", "apt-get install -y make"),
     "without --no-install-recommends"),
    ("apt lists kept", (" \\\n && rm -rf /var/lib/apt/lists/*\nWORKDIR /src", "\nWORKDIR /src"),
     "apt lists not removed"),
    ("copy from a later stage", ("COPY --from=build /stage/runtime-packages.txt",
                                 "COPY --from=encoder /stage/runtime-packages.txt"),
     "COPY --from=encoder is not an earlier stage"),
    ("no models volume", ('VOLUME ["/models"]\n', ""), "no VOLUME /models"),
]


class LinterCatchesMistakesTest(unittest.TestCase):
    def test_mutations(self):
        original = CPU.read_text()
        self.assertEqual(lint_text(original), [])
        for description, (old, new), expected in MUTATIONS:
            with self.subTest(description):
                self.assertIn(old, original)
                problems = lint_text(original.replace(old, new, 1))
                self.assertTrue(any(expected in p for p in problems),
                                f"expected {expected!r} in {problems}")

    def test_dockerignore_must_keep_models_out(self):
        problems = lint_text(CPU.read_text(), ignore=".git\nbuild\n.deps\n")
        self.assertIn("cpu.Dockerfile.dockerignore does not exclude models", problems)

    def test_makefile_chain(self):
        broken = MAKEFILE.replace("@tools/setup.sh", "@echo skipped")
        self.assertIn("Makefile: `setup` does not run tools/setup.sh",
                      lint_dockerfile.check_makefile(broken))
        self.assertEqual(lint_dockerfile.check_makefile(MAKEFILE), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
