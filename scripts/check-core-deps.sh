#!/usr/bin/env bash
# The arrows between the crates point one way, and Cargo alone cannot say what a crate may not
# depend on. This fails, naming the culprit and the path that brings it, when
#   - reverie-core's normal dependency tree holds Kubernetes, an async runtime or HTTP, or
#   - reverie-api's holds a Kubernetes client or runtime, an async runtime or HTTP (kube's
#     derive and types are what it is for).
set -euo pipefail
cd "$(dirname "$0")/.."

check() {
  local crate="$1" forbidden="$2" what="$3"
  local tree found
  tree="$(cargo tree --locked -p "$crate" -e normal --prefix none --format '{p}')"
  found="$(awk '{print $1}' <<<"$tree" | sort -u | grep -E "$forbidden" || true)"
  if [[ -n "$found" ]]; then
    echo "check-core-deps: $crate depends on: $(tr '\n' ' ' <<<"$found")" >&2
    for culprit in $found; do
      cargo tree --locked -p "$crate" -e normal -i "$culprit" >&2 || true
    done
    return 1
  fi
  echo "check-core-deps: $crate has no $what dependency ($(wc -l <<<"$tree") crates)"
}

runtime='tokio|hyper|hyper-[a-z-]+|reqwest|axum|tower|h2'
check reverie-core "^(kube|kube-[a-z-]+|k8s-openapi|$runtime)$" "Kubernetes, async runtime or HTTP"
check reverie-api "^(kube-client|kube-runtime|$runtime)$" "Kubernetes client, async runtime or HTTP"
