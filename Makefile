# Thin wrapper over CMake for the commands people type. See README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all build deps configure test demo asan bench soak fuzz clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: deps
	$(MAKE) build
	cd $(BUILD) && ctest -V --output-on-failure --timeout 600

demo: deps
	$(MAKE) build
	HF_BIN=$(BUILD) scripts/demo.sh

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHF_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest -V --output-on-failure --timeout 900

bench: deps
	$(MAKE) build
	HF_BIN=$(BUILD) scripts/bench.sh

# libFuzzer over every decoder facing outside input (clang). FUZZ_SECONDS
# per target; crashes land in $(FUZZ_BUILD)/crashes and fail the target.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/deps.sh --fuzz
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHF_FUZZ=ON -DHF_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_frame fuzz_record fuzz_control fuzz_method fuzz_scenario
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Long runs, not in CI: 200 engine kills, 200,000 simulated schedules.
soak: deps
	$(MAKE) build
	cd $(BUILD) && HF_KILLS=200 HF_SIM_SCHEDULES=200000 \
	    ctest -V --output-on-failure --timeout 7200 -R 'e2e_engine_kill9|test_sim'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
