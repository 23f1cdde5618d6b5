#!/usr/bin/env bash
# The core crate stays free of Kubernetes, async runtimes and HTTP: fails, naming the culprit and
# the path that brings it, if its normal (non-dev) dependency tree holds any of them.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(kube|kube-[a-z-]+|k8s-openapi|tokio|hyper|hyper-[a-z-]+|reqwest|axum|tower|h2)$'
tree="$(cargo tree --locked -p reverie-core -e normal --prefix none --format '{p}')"
found="$(awk '{print $1}' <<<"$tree" | sort -u | grep -E "$forbidden" || true)"
if [[ -n "$found" ]]; then
  echo "check-core-deps: reverie-core depends on: $(tr '\n' ' ' <<<"$found")" >&2
  for crate in $found; do
    cargo tree --locked -p reverie-core -e normal -i "$crate" >&2 || true
  done
  exit 1
fi
echo "check-core-deps: reverie-core has no Kubernetes, async runtime or HTTP dependency ($(wc -l <<<"$tree") crates)"
