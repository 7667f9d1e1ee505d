# syntax=docker/dockerfile:1.6
# CPU images of the ICAE encoder and decoder on Debian 12. Build from the repository root:
#   docker build -f deploy/docker/cpu.Dockerfile --target encoder -t icae/encoder:0.1.0-cpu .
#   docker build -f deploy/docker/cpu.Dockerfile --target decoder -t icae/decoder:0.1.0-cpu .
# The build stage runs the README's own build: `make` runs tools/setup.sh (the same Debian packages
# and SentencePiece build as on a developer machine) and then CMake, so every `make test` in CI
# exercises these steps. Models are mounted at /models at run time, never baked in
# (cpu.Dockerfile.dockerignore keeps models/ out of the build context).

ARG DEBIAN_IMAGE=debian:12.8-slim

# ---- build: the repository's own set-up and build ------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends make ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# ICAE_SETUP_DEPLOY=0: leave out what only the deploy checks use (Prometheus, Python, kubectl).
RUN ICAE_SETUP_DEPLOY=0 make build BUILD_DIR=build CMAKE_FLAGS=-DICAE_BUILD_TESTS=OFF
RUN deploy/docker/stage.sh /stage build/bin/icae-encoder build/bin/icae-decoder \
 && test ! -s /stage/foreign-libraries.txt

# ---- runtime: the shared libraries the binaries link, nothing to build with -----------------------
FROM ${DEBIAN_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /stage/runtime-packages.txt /tmp/runtime-packages.txt
# libopenblas0-openmp: LibTorch's BLAS through Debian's alternatives (the reference BLAS is ~25x
# slower); it is not a direct dependency, so the package list cannot find it.
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends \
      libopenblas0-openmp \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 icae \
 && useradd --system --uid 10001 --gid icae --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin icae
COPY --from=build /stage/opt/icae /opt/icae
USER 10001:10001
WORKDIR /tmp
VOLUME ["/models"]
# No Docker HEALTHCHECK: health is grpc.health.v1 on the gRPC port, probed natively by Kubernetes
# (deploy/k8s); the image carries no gRPC health client for Docker to run.
HEALTHCHECK NONE

FROM runtime AS encoder
EXPOSE 50051 9091
ENTRYPOINT ["/opt/icae/bin/icae-encoder"]
CMD ["--model=/models/demo/base", "--adapter=/models/demo/icae", "--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9091"]

FROM runtime AS decoder
EXPOSE 50052 9092
ENTRYPOINT ["/opt/icae/bin/icae-decoder"]
CMD ["--model=/models/demo/base", "--adapter=/models/demo/icae", "--listen=0.0.0.0:50052", "--metrics_listen=0.0.0.0:9092"]
