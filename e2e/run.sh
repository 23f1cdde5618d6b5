#!/usr/bin/env bash
# Runs the end-to-end suite. With KUBECONFIG pointing at a reachable cluster (kind, k3d, a real
# one) it uses that cluster and starts nothing. Otherwise it starts the local control plane
# (e2e/cluster/up.sh, with the process node), runs the suite, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/reverie/target}"
cargo build --locked -p reverie --bins
cargo build --locked -p process-node
export REVERIE_BIN="$CARGO_TARGET_DIR/debug/reverie"
export PROCESS_NODE_BIN="$CARGO_TARGET_DIR/debug/process-node"
HELM="$(bash scripts/install-helm.sh)"
export HELM
# kubectl (and the control plane) of the version the suite targets, first on PATH.
K8S_BIN_DIR="$(bash e2e/cluster/install-deps.sh)"
export PATH="$K8S_BIN_DIR:$PATH"
# The real peers of the ingest test: an OpenTelemetry Collector built from its Go modules, and a
# Python environment with the OpenTelemetry SDK and the OpenAI instrumentation from PyPI.
OTELCOL_BIN="$(bash e2e/peers/install-otelcol.sh)"
AGENT_PYTHON="$(bash e2e/peers/install-python-agent.sh)"
export OTELCOL_BIN AGENT_PYTHON
# The dashboard's browser tests: Debian's Chromium and ChromeDriver.
CHROMEDRIVER_BIN="$(bash e2e/peers/install-chromium.sh)"
export CHROMEDRIVER_BIN

if [[ -n "${KUBECONFIG:-}" ]] && kubectl --request-timeout=5s version >/dev/null 2>&1; then
  echo "e2e: using the cluster in KUBECONFIG=$KUBECONFIG" >&2
else
  [[ -n "${KUBECONFIG:-}" ]] && echo "e2e: KUBECONFIG=$KUBECONFIG is not reachable; starting the local control plane" >&2
  export="$(bash e2e/cluster/up.sh)"
  eval "$export"
  trap 'bash e2e/cluster/down.sh' EXIT
fi

# One test at a time: tests start their own operator processes, which watch the whole cluster.
# --no-fail-fast: one failing test file does not hide the rest.
cargo test --locked --no-fail-fast -p reverie-e2e -- --test-threads=1 "$@"
