# pagepool: the two commands of the README and their parts.
#   make demo   the main job: pagepool-fwd's sim demo (forwarding over two
#               sim devices, then the same run with the malloc baseline)
#   make test   the whole suite in release, asan and tsan
# Both install missing Debian packages first (scripts/deps.sh).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
# CI builds with -Werror.
export PAGEPOOL_WERROR ?= $(if $(CI),ON,OFF)
TEST_PRESETS ?= release asan tsan

.PHONY: all deps demo test bench $(addprefix build-,release debug asan tsan) $(addprefix test-,release debug asan tsan) clean

all: build-release

deps:
	@bash scripts/deps.sh

# build-<preset> and test-<preset> for every preset (explicit rules: make
# does not apply pattern rules to phony targets).
define preset_rules
build-$(1): deps
	cmake --preset $(1) >/dev/null
	cmake --build --preset $(1) -j$$(JOBS)
test-$(1): build-$(1)
	ctest --preset $(1) -j$$(JOBS)
endef
$(foreach p,release debug asan tsan,$(eval $(call preset_rules,$(p))))

demo: build-release
	./build/release/tools/pagepool-fwd/pagepool-fwd

# Core paths (stats on and off), then pagepool against its peers.
bench: build-release
	./build/release/bench/pagepool_bench_core_stats --benchmark_min_time=0.5
	./build/release/bench/pagepool_bench_core_nostats --benchmark_min_time=0.5
	./build/release/tools/pagepool-bench/pagepool-bench

test: $(addprefix test-,$(TEST_PRESETS))

clean:
	rm -rf build
