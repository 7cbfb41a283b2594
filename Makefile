# One target per scenario. `make run` is the main job, `make test` the test suite.
#
# Every scenario runs through $(MAELSTROM), our harness by default. It takes the real
# Maelstrom's options, so `make broadcast-partition MAELSTROM=/path/to/maelstrom` runs the
# same scenario on the JVM Maelstrom.
SHELL := /bin/bash
.DEFAULT_GOAL := run

CARGO ?= cargo
RELEASE := target/release
EXAMPLES := $(RELEASE)/examples
MAELSTROM ?= $(RELEASE)/workloads
# Short runs by default; `make broadcast-partition TIME=60` for a long one.
TIME ?= 10
SEED ?=
SEED_FLAG := $(if $(SEED),--seed $(SEED),)
# Scenarios that must catch their node say so to our harness (`--expect invalid`, kept in
# run.json for the reports); the JVM Maelstrom has no such option.
EXPECT_INVALID_FLAG := $(if $(filter $(RELEASE)/workloads,$(MAELSTROM)),--expect invalid,)

# The scenario targets (<workload>-<fault>), $(SCENARIOS) and $(EXPECT_INVALID) (those that
# must catch their node) are generated from
# workloads/src/scenario.rs; `make scenarios` regenerates them and the CI matrix.
include scenarios.mk

.PHONY: run test deps build bench bench-core bench-harness bench-giftid bench-raft bench-queue bench-matcher smoke-echo scenarios compat

# Debian packages the tests need: libfaketime for the clock nemesis, Chromium for the
# browser test of `workloads serve`, PyNaCl (libsodium) to open the matcher's sealed boxes.
DEBIAN_PACKAGES := libfaketime faketime chromium python3 python3-nacl
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

## Installs the Debian packages that are missing (nothing to do when all are there).
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

## Build every crate and node binary in release mode.
build:
	$(CARGO) build --release --workspace --bins --examples

## The test suite: unit, property and process-level tests of every crate, without the
## benchmarks (`make bench` runs them, optimised). The process tests spawn the example
## nodes, which `cargo test` builds only as tests, so they are built first.
test: deps
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test --workspace --lib --bins --tests --examples

## The main job: build everything and run every scenario, in order, showing each one's
## progress, verdict, seed and replay command, then a summary table. A scenario passes
## when its verdict is the expected one: valid for most, invalid for those that show a
## fault catching a node that is only correct without it. Logs: target/make-run/.
run: deps build
	@MAKE="$(MAKE)" WORKLOADS=$(RELEASE)/workloads .ci/run-scenarios $(SCENARIOS)

## The compatibility suite: every node binary a standard Maelstrom workload fits (echo,
## unique-ids with the example and giftid-node, broadcast, g-counter, lin-kv), with no
## faults and under partitions, through $(MAELSTROM) with only options the real Maelstrom
## 0.2.4 has: `make compat MAELSTROM=/path/to/maelstrom` runs it there. One line per run;
## fails if any run is not valid. `make compat REPEAT=3` repeats the suite, COMPAT_TIME
## sets each run's --time-limit.
REPEAT ?= 1
COMPAT_TIME ?= 5
compat: build
	@MAELSTROM="$(MAELSTROM)" RELEASE="$(RELEASE)" TIME="$(COMPAT_TIME)" REPEAT="$(REPEAT)" \
	  bash .ci/compat

## Benchmarks that print figures, built optimised (`cargo bench` uses the release profile).
bench: bench-core bench-harness bench-giftid bench-raft bench-queue bench-matcher

## Gift IDs per second: the generator alone, and through the Maelstrom protocol with and
## without batching, in one run.
bench-giftid:
	$(CARGO) bench -p giftid-node --bench generator

## Echo requests per second through maelstrom-core's driver, next to a minimal serde_json
## loop and `cat`, in one run.
bench-core:
	$(CARGO) build --release --examples -p maelstrom-core
	$(CARGO) bench -p maelstrom-core --bench driver

## Raft in-process, 3 and 5 nodes side by side: commits/s on one core, commit latency.
bench-raft:
	$(CARGO) bench -p maelstrom-core --bench raft

## The task queue in-process on one core, 3 and 5 nodes side by side: one partition's
## replicated state machines, and whole nodes on a simulated network (tasks/s, messages
## per task). `make bench-harness` has the same through real processes.
bench-queue:
	$(CARGO) bench -p queue-node --bench queue

## Feasibility plus a random valid Secret Santa assignment for 10,000 and 100,000
## participants, next to a plain shuffle of the same ids, in one run.
bench-matcher:
	$(CARGO) bench -p matcher-node --bench assign

## Harness throughput: ops/s at --rate 10000, routed messages/s and peak memory for 25 nodes;
## and through real processes: Raft (the lin-kv example) and the task queue on 3 and 5 nodes,
## and the Secret Santa matcher on 5 (commit latency per exchange, messages per committed match).
bench-harness:
	$(CARGO) build --release --workspace --bins --examples
	$(EXAMPLES)/bench_harness 10

## Many seeds with a pass count; runs are numbered 1 to $(SEEDS). The same pattern serves
## two kinds of names:
## - a scenario (`make unique-ids-kill-seeds SEEDS=20`): that one scenario on every seed,
##   counting the runs that caught the node (expected invalid) or stayed valid;
## - a suite (`make lin-kv-seeds SEEDS=20 TIME=30`, `make task-queue-seeds SEEDS=20`): each of
##   its scenarios named in SEEDED_FAULTS (partition kill pause chaos by default) on every seed.
SEEDS ?= 10
SEEDED_FAULTS ?= partition kill pause chaos
# The scenarios a `<name>-seeds` target runs (only those that exist), and how to word a pass.
SEED_TARGETS = $(if $(filter $*,$(SCENARIOS)),$*,$(filter $(SCENARIOS),$(addprefix $*-,$(SEEDED_FAULTS))))
SEED_WORD = $(if $(filter-out $(EXPECT_INVALID),$(SEED_TARGETS)),$(if $(filter $(EXPECT_INVALID),$(SEED_TARGETS)),as expected,valid),caught the node)
%-seeds: build
	@if [ -z "$(SEED_TARGETS)" ]; then \
	  echo "no scenario $* nor $*-<fault> for SEEDED_FAULTS=\"$(SEEDED_FAULTS)\" (make scenarios lists them)"; exit 2; \
	fi; \
	pass=0; total=0; \
	for target in $(SEED_TARGETS); do \
	  case " $(EXPECT_INVALID) " in *" $$target "*) miss="not caught";; *) miss="not valid";; esac; \
	  for seed in $$(seq 1 $(SEEDS)); do \
	    total=$$((total + 1)); \
	    if $(MAKE) --no-print-directory -s $$target SEED=$$seed > /dev/null 2>&1; \
	    then pass=$$((pass + 1)); else echo "$$target --seed $$seed: $$miss"; fi; \
	  done; \
	done; \
	echo "$*: $$pass of $$total seeded runs $(SEED_WORD)"; \
	[ $$pass -eq $$total ]

## Pipes init and a few requests through the echo node and shows the replies.
smoke-echo:
	$(CARGO) build --release --examples -p maelstrom-core
	@printf '%s\n' \
	  '{"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}' \
	  '{"src":"c1","dest":"n0","body":{"type":"echo","echo":"Merry Christmas","msg_id":1}}' \
	  'not json' \
	  '{"src":"c1","dest":"n0","body":{"type":"sleigh","msg_id":2}}' \
	  | $(EXAMPLES)/echo

## Regenerates scenarios.mk and the CI matrices (every scenario; the chaos scenarios'
## three-seed sweeps) from workloads/src/scenario.rs.
scenarios:
	$(CARGO) build --release -p workloads --bins
	$(RELEASE)/workloads scenarios --makefile > scenarios.mk
	$(RELEASE)/workloads scenarios --ci-matrix | while read -r line; do \
	  sed -i "s/^\( *\)$${line%%:*}: \[.*\]$$/\1$$line/" .github/workflows/ci.yml; \
	done
