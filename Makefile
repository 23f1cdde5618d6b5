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
test: lint unit quality e2e ## Everything CI checks: formatting, lints, unit, mocked-API, dream quality and e2e tests

.PHONY: quality
quality: ## Dream quality on the planted corpus and on the real corpus next to the clone (../shared), against the bar
	$(CARGO) build --locked -q -p reverie-dev --bin reverie-dev
	$(CARGO_TARGET_DIR)/debug/reverie-dev quality --corpus 300 --seed 11 >/dev/null
	REVERIE_DEV_BIN=$(CARGO_TARGET_DIR)/debug/reverie-dev bash scripts/quality-real.sh

.PHONY: lint
lint: ## cargo fmt --check, clippy with warnings as errors, and the core crate free of Kubernetes
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	bash scripts/check-core-deps.sh

.PHONY: unit
unit: ## Every crate's unit, property and mocked-API tests but the e2e suite (no cluster; installs Helm and kubectl first)
	helm="$$(bash scripts/install-helm.sh)" && k8s_bin="$$(bash e2e/cluster/install-deps.sh)" && \
	  HELM="$$helm" PATH="$$k8s_bin:$$PATH" $(CARGO) test --locked --workspace --exclude reverie-e2e

.PHONY: quality-real
quality-real: ## Dream quality on the real tau2-bench transcripts vs the analyst's truth (REAL_CORPUS to override)
	@bash scripts/quality-real.sh

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --locked -q -p reverie -- crds --out-dir crds
	$(CARGO) run --locked -q -p reverie -- crds --reference > docs/crd-fields.md
	cp crds/*.yaml charts/reverie/crds/ && cp crds/*.yaml config/crd/

.PHONY: e2e
e2e: ## End-to-end tests: against $$KUBECONFIG if reachable, else a local control plane started here
	bash e2e/run.sh

.PHONY: cluster-up
cluster-up: ## Start the local control plane + process node; prints `export KUBECONFIG=...`
	@$(CARGO) build --locked -q -p reverie --bins >&2
	@$(CARGO) build --locked -q -p process-node >&2
	@REVERIE_BIN=$(CARGO_TARGET_DIR)/debug/reverie PROCESS_NODE_BIN=$(CARGO_TARGET_DIR)/debug/process-node bash e2e/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop exactly the processes cluster-up started
	@bash e2e/cluster/down.sh

.PHONY: tools
tools: ## Build Helm, the control plane and kubectl from their Go modules into ~/.cache/reverie
	@bash scripts/install-helm.sh
	@bash e2e/cluster/install-deps.sh

# `make fire-precision` measures on a second local control plane (its own state dir and ports),
# so it does not disturb the e2e runs on the default one. Override these to move it.
PRECISION_CLUSTER_DIR ?= $(HOME)/.cache/reverie/cluster-precision
PRECISION_PORTS ?= REVERIE_ETCD_PORT=23791 REVERIE_ETCD_PEER_PORT=23801 REVERIE_APISERVER_PORT=26444 REVERIE_KCM_PORT=20258
FIRES ?= 22

.PHONY: fire-precision
fire-precision: ## Fire delay, DreamSchedule vs the batch/v1 CronJob controller, on a second control plane (~FIRES+2 min)
	@$(CARGO) build --locked -q -p reverie --bins >&2
	@$(CARGO) build --locked -q -p process-node -p reverie-measure --bin fire-precision >&2
	@set -euo pipefail; \
	export REVERIE_CLUSTER_DIR="$(PRECISION_CLUSTER_DIR)" $(PRECISION_PORTS); \
	export REVERIE_BIN="$(CARGO_TARGET_DIR)/debug/reverie" PROCESS_NODE_BIN="$(CARGO_TARGET_DIR)/debug/process-node"; \
	trap 'bash e2e/cluster/down.sh' EXIT; \
	kubeconfig_export="$$(bash e2e/cluster/up.sh)"; \
	eval "$$kubeconfig_export"; \
	"$(CARGO_TARGET_DIR)/debug/fire-precision" --fires $(FIRES)

APPROVALS ?= 60

.PHONY: approval-latency
approval-latency: ## Approval → applied latency over APPROVALS proposals, on the local control plane
	@$(CARGO) build --locked -q -p reverie --bins >&2
	@$(CARGO) build --locked -q -p process-node -p reverie-measure --bin approval-latency >&2
	@eval "$$(REVERIE_BIN=$(CARGO_TARGET_DIR)/debug/reverie PROCESS_NODE_BIN=$(CARGO_TARGET_DIR)/debug/process-node bash e2e/cluster/up.sh)"; \
	REVERIE_BIN=$(CARGO_TARGET_DIR)/debug/reverie "$(CARGO_TARGET_DIR)/debug/approval-latency" --approvals $(APPROVALS)

SCALE_ARGS ?= --agents 1000 --proposals 10 --schedules 100 --namespaces 10

.PHONY: scale
scale: ## The operator at scale (1,000 Agents × 10 proposals, 100 schedules) on a second control plane
	@$(CARGO) build --locked -q --release -p reverie --bin reverie >&2
	@$(CARGO) build --locked -q -p process-node -p reverie-measure --bin scale >&2
	@set -euo pipefail; \
	export REVERIE_CLUSTER_DIR="$(PRECISION_CLUSTER_DIR)" $(PRECISION_PORTS); \
	export REVERIE_BIN="$(CARGO_TARGET_DIR)/release/reverie" PROCESS_NODE_BIN="$(CARGO_TARGET_DIR)/debug/process-node"; \
	trap 'bash e2e/cluster/down.sh' EXIT; \
	kubeconfig_export="$$(bash e2e/cluster/up.sh)"; \
	eval "$$kubeconfig_export"; \
	"$(CARGO_TARGET_DIR)/debug/scale" $(SCALE_ARGS)

.PHONY: demo
demo: ## The whole loop: local control plane, Helm install, a dream, its review diff, approval, the new MEMORY.md
	@bash scripts/demo.sh
