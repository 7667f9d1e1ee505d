# syntax=docker/dockerfile:1.6
# CUDA images of the ICAE encoder and decoder. Build from the repository root on a machine with
# Docker (no GPU needed to build; one is needed to run, with the NVIDIA container toolkit):
#   docker build -f deploy/docker/cuda.Dockerfile --target encoder \
#     --build-arg LIBTORCH_SHA256=<sha256 of the zip> -t icae/encoder:0.1.0-cuda .
#   docker build -f deploy/docker/cuda.Dockerfile --target decoder ... -t icae/decoder:0.1.0-cuda .
#
# Why this shape: the services need Debian 12's gRPC 1.51 / protobuf 3.21 / abseil stack, and
# LibTorch with the C++11 ABI those libraries use. The official pytorch/pytorch images carry the
# pre-C++11 ABI and Ubuntu's older gRPC, so the images are built on the two official CUDA pieces:
# the NVIDIA CUDA development image (the toolkit LibTorch's CMake package looks for) and the
# official LibTorch 1.13.1 CUDA 11.7 distribution (C++11 ABI, bundling the CUDA runtime, cuBLAS and
# cuDNN), on the same Debian 12 base and the same tools/setup.sh + make as the CPU image.
# Models are mounted at /models, never baked in.

ARG DEBIAN_IMAGE=debian:12.8-slim
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:11.7.1-cudnn8-devel-ubuntu22.04

# ---- CUDA toolkit from NVIDIA's official image -----------------------------------------------------
FROM ${CUDA_DEVEL_IMAGE} AS cuda

# ---- the official LibTorch CUDA distribution, checked against a pinned digest --------------------
FROM ${DEBIAN_IMAGE} AS libtorch
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu117/libtorch-cxx11-abi-shared-with-deps-1.13.1%2Bcu117.zip
ARG LIBTORCH_SHA256
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
RUN test -n "${LIBTORCH_SHA256}" || { echo "pass --build-arg LIBTORCH_SHA256=..." >&2; exit 1; } \
 && curl -fsSL "${LIBTORCH_URL}" -o /tmp/libtorch.zip \
 && echo "${LIBTORCH_SHA256}  /tmp/libtorch.zip" | sha256sum -c - \
 && unzip -q /tmp/libtorch.zip -d /opt \
 && rm /tmp/libtorch.zip

# ---- build: the repository's own set-up and build, against the CUDA LibTorch ---------------------
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# /usr/local/cuda is a symlink in the NVIDIA image: copy the versioned directory it points to.
COPY --from=cuda /usr/local/cuda-11.7 /usr/local/cuda
COPY --from=libtorch /opt/libtorch /opt/libtorch
ENV PATH=/usr/local/cuda/bin:${PATH}
RUN apt-get update \
 && apt-get install -y --no-install-recommends make ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# tools/setup.sh also installs Debian's CPU LibTorch (the build of the tests needs it elsewhere);
# Torch_DIR points CMake at the CUDA one, and the binaries' RUNPATH at /opt/libtorch/lib.
RUN ICAE_SETUP_DEPLOY=0 make build BUILD_DIR=build \
      CMAKE_FLAGS="-DICAE_BUILD_TESTS=OFF -DTorch_DIR=/opt/libtorch/share/cmake/Torch -DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda"
RUN deploy/docker/stage.sh /stage build/bin/icae-encoder build/bin/icae-decoder

# ---- runtime -------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /stage/runtime-packages.txt /tmp/runtime-packages.txt
# The CUDA LibTorch's own libraries come from /opt/libtorch; Debian's libtorch is not installed.
RUN apt-get update \
 && grep -v '^libtorch' /tmp/runtime-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 icae \
 && useradd --system --uid 10001 --gid icae --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin icae
COPY --from=libtorch /opt/libtorch/lib /opt/libtorch/lib
COPY --from=build /stage/opt/icae /opt/icae
# The NVIDIA container toolkit mounts the driver libraries for these capabilities.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/opt/icae/lib:/opt/libtorch/lib
USER 10001:10001
WORKDIR /tmp
VOLUME ["/models"]
# No Docker HEALTHCHECK: health is grpc.health.v1 on the gRPC port, probed natively by Kubernetes
# (deploy/k8s); the image carries no gRPC health client for Docker to run.
HEALTHCHECK NONE

FROM runtime AS encoder
EXPOSE 50051 9091
ENTRYPOINT ["/opt/icae/bin/icae-encoder"]
CMD ["--model=/models/demo/base", "--adapter=/models/demo/icae", "--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9091", "--device=cuda", "--dtype=bfloat16"]

FROM runtime AS decoder
EXPOSE 50052 9092
ENTRYPOINT ["/opt/icae/bin/icae-decoder"]
CMD ["--model=/models/demo/base", "--adapter=/models/demo/icae", "--listen=0.0.0.0:50052", "--metrics_listen=0.0.0.0:9092", "--device=cuda", "--dtype=bfloat16"]
