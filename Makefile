# The README's two commands: `make demo` and `make test`. Each does all set-up on a fresh Debian 12.
BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: all setup configure build test test-opt-in test-asan image demo demo-model bench fuzz format clean

all: build

setup:
	@tools/setup.sh

$(BUILD_DIR)/build.ninja: | setup
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: setup $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Everything but the opt-in tests (label opt_in: a real 7B checkpoint; see test-opt-in).
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -LE opt_in $(CTEST_FLAGS)

# The opt-in tests: a released checkpoint the user has (ICAE_REAL_MODEL, ICAE_REAL_ADAPTER).
test-opt-in: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L opt_in $(CTEST_FLAGS)

# The tests labelled `sanitize` under AddressSanitizer + UndefinedBehaviorSanitizer: the unit tests
# of the libraries that meet untrusted input (base, io, codec, serving, client) and the server
# integration tests, whose icae-encoder / icae-decoder / icae binaries are built with the
# sanitizers too. Only those targets are built; LibTorch, protobuf and the static SentencePiece are
# not instrumented but run fine under ASan with leak checking on.
ASAN_TARGETS ?= icae_base_test icae_io_test icae_codec_test icae_serving_test icae_client_test \
	icae_encoder_server_test icae_decoder_server_test icae_store_test icae_slot_store_test \
	icae_encoder icae_decoder icae
test-asan: setup
	cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICAE_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS) --target $(ASAN_TARGETS)
	cd $(ASAN_BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L sanitize $(CTEST_FLAGS)

demo: build
	@tools/demo.sh $(DEMO_FLAGS)

# Reproduces models/demo/ from nothing: corpus + tokenizer, base LM, ICAE adapter (each stage
# resumable and skipped when its output exists; recipe and seeds in tools/train/demo_model.sh).
demo-model: build
	@BUILD_DIR=$(BUILD_DIR) tools/train/demo_model.sh all

# The CPU runtime image, built here without a Docker engine (buildah + debootstrap; see
# deploy/image/). `make test-opt-in` (ctest -L image) also starts both services from it.
image: build
	@ICAE_SETUP_IMAGE=1 ICAE_SETUP_DEPLOY=0 tools/setup.sh
	@deploy/image/build_cpu_image.sh

bench: build
	@tools/run_benchmarks.sh

# libFuzzer + ASan + UBSan on the fuzz targets of tests/fuzz, FUZZ_SECONDS (60) each, in
# build-fuzz/ (clang-14; `tools/fuzz/run.sh --merge` keeps new inputs in the committed corpus).
fuzz:
	@tools/fuzz/run.sh

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) build-fuzz
