# reverie — developer entry points. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Heavy build output lives outside the clone, so fresh clones (and CI) reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/reverie/target
CARGO ?= cargo

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the release binaries (reverie, kubectl-dream)
	$(CARGO) build --release --locked -p reverie

.PHONY: test
test: lint unit ## Everything CI checks: formatting, lints, unit and mocked-API tests

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

.PHONY: unit
unit: ## Unit, property and mocked-API controller tests (no cluster needed)
	$(CARGO) test --locked -p reverie

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --locked -q -p reverie -- crds --out-dir crds
