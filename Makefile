# The two commands of the quick start, and the benchmarks. Each installs what it needs
# first (scripts/install-deps is idempotent and quick when everything is present).
JOBS ?= 2
CTEST_ARGS ?=

.PHONY: all deps build demo test test-dev test-asan test-fuzz bench clean

all: build

deps:
	bash scripts/install-deps

build: deps
	cmake --preset dev -DBRIDGEHEAD_WERROR=ON
	cmake --build --preset dev -j$(JOBS)

demo: deps
	cmake --preset release
	cmake --build --preset release -j$(JOBS) --target bridgehead
	bash examples/demo/run-demo build/release/src/cli/bridgehead

# Both presets (dev and ASan+UBSan), every label: unit, integration, lint, fuzz.
test: deps test-dev test-asan test-fuzz

test-dev:
	cmake --preset dev -DBRIDGEHEAD_WERROR=ON
	cmake --build --preset dev -j$(JOBS)
	cd build/dev && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test-asan:
	cmake --preset asan -DBRIDGEHEAD_WERROR=ON
	cmake --build --preset asan -j$(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test-fuzz:
	cmake --preset fuzz
	cmake --build --preset fuzz -j$(JOBS)
	cd build/fuzz && ctest --output-on-failure -L fuzz -j$(JOBS)

bench: deps
	cmake --preset release
	cmake --build --preset release -j$(JOBS)
	bash bench/run-benchmarks build/release

clean:
	rm -rf build
