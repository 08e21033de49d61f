# Thin wrapper over CMake. `make`, `make test`, `make demo`, `make bench`,
# `make asan` (tests under AddressSanitizer + UBSan), `make fuzz`.
BUILD ?= build
JOBS ?= $(shell nproc)
VMED = $(BUILD)/vmed

.PHONY: all test demo bench asan fuzz clean

all:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: all
	$(BUILD)/vmed_tests

demo: all
	@sh scripts/demo.sh $(VMED)

bench: all
	@sh bench/run.sh $(BUILD)

asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVMED_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build-asan/vmed_tests

fuzz:
	@sh scripts/install-deps.sh --fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DVMED_FUZZ=ON -DVMED_SANITIZE=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@echo "fuzz targets: build-fuzz/fuzz_*  (run e.g. build-fuzz/fuzz_safetensors -max_total_time=600 fuzz/corpus/safetensors)"

clean:
	rm -rf $(BUILD) build-asan build-fuzz
