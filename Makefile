# Thin wrapper over CMake for the commands people type. See README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all build deps configure test demo asan bench soak fuzz clean chaos

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
# per target, or FUZZ_RUNS executions each (issue 8: FUZZ_RUNS=10000000);
# crashes land in $(FUZZ_BUILD)/crashes and fail the target.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
fuzz: deps
	@scripts/deps.sh --fuzz
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHF_FUZZ=ON -DHF_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_frame fuzz_record fuzz_control fuzz_method fuzz_scenario fuzz_config
	FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The chaos suite (docs/chaos.md): CHAOS_ROUNDS rounds of real processes
# under random faults from CHAOS_SEED (default: from the clock, printed),
# then the power-loss cases. A table of faults and findings at the end.
CHAOS_ROUNDS ?= 5
CHAOS_SEED   ?=
chaos: deps
	$(MAKE) build
	HF_BIN=$(BUILD) HF_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(if $(CHAOS_SEED),HF_CHAOS_SEED=$(CHAOS_SEED)) \
	    tests/chaos/chaos.sh
	HF_BIN=$(BUILD) tests/chaos/powerloss.sh

# Long runs, not in CI: 200 engine kills, 200,000 simulated schedules,
# SOAK_CHAOS_ROUNDS (>= 200) chaos rounds, 20 power losses per side, and
# tests/chaos/net.sh (reconnects, a 60 s SIGSTOP, netns + netem if root).
SOAK_CHAOS_ROUNDS ?= 200
soak: deps
	$(MAKE) build
	cd $(BUILD) && HF_KILLS=200 HF_SIM_SCHEDULES=200000 \
	    ctest -V --output-on-failure --timeout 7200 -R 'e2e_engine_kill9|test_sim'
	HF_BIN=$(BUILD) HF_CHAOS_ROUNDS=$(SOAK_CHAOS_ROUNDS) $(if $(CHAOS_SEED),HF_CHAOS_SEED=$(CHAOS_SEED)) \
	    tests/chaos/chaos.sh
	HF_BIN=$(BUILD) HF_PL_LOSSES=20 tests/chaos/powerloss.sh
	@scripts/deps.sh --net || echo "soak: no iproute2/iptables: net.sh may skip cases"
	HF_CHAOS_NET=1 HF_BIN=$(BUILD) tests/chaos/net.sh || [ $$? -eq 77 ]

# Installs the daemons, the CLI, libholdfast (.so and .a), its headers,
# holdfast.pc, the CMake package, the systemd units and the man pages under
# PREFIX (staged under DESTDIR if set). See docs/operations.md.
# SYSTEMD_UNITDIR (optional) overrides $(PREFIX)/lib/systemd/system.
PREFIX          ?= /usr/local
DESTDIR         ?=
SYSTEMD_UNITDIR ?=
.PHONY: install
install:
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	    $(if $(SYSTEMD_UNITDIR),-DHF_SYSTEMD_UNITDIR=$(SYSTEMD_UNITDIR)) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS) --target holdfast-engine holdfast-aggregator holdfast \
	    holdfast_shared holdfast_static
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
