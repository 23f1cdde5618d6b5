#!/usr/bin/env bash
# The whole loop in one command: a local control plane, reverie installed with its Helm chart,
# a support agent with the example transcripts, a dream, the review diff, an approval with
# `kubectl dream approve`, and the agent's new MEMORY.md.
#
# With KUBECONFIG pointing at a reachable cluster it uses that cluster (its nodes must run an
# image named REVERIE_IMAGE); otherwise it starts the local control plane, whose process node
# runs the operator pod from the chart with the chart's ServiceAccount and RBAC.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE="${DEMO_NAMESPACE:-reverie-demo}"
RELEASE_NAMESPACE="${DEMO_RELEASE_NAMESPACE:-reverie-system}"
TIMEOUT="${DEMO_TIMEOUT:-120}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/reverie/target}"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# Polls `$@` until it succeeds, for at most TIMEOUT seconds.
wait_until() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 1
  done
}

say "Building reverie and kubectl-dream"
cargo build --locked -q -p reverie --bins
cargo build --locked -q -p process-node
export REVERIE_BIN="$CARGO_TARGET_DIR/debug/reverie"
export PROCESS_NODE_BIN="$CARGO_TARGET_DIR/debug/process-node"
export PATH="$CARGO_TARGET_DIR/debug:$PATH" # kubectl finds the kubectl-dream plugin here
HELM="${HELM:-$(bash scripts/install-helm.sh)}"

if [[ -n "${KUBECONFIG:-}" ]] && kubectl --request-timeout=5s version >/dev/null 2>&1; then
  say "Using the cluster in KUBECONFIG=$KUBECONFIG"
  IMAGE_REPOSITORY="${REVERIE_IMAGE_REPOSITORY:-ghcr.io/reverie-dev/reverie}"
else
  say "Starting the local control plane (the first run builds it: about 10 minutes)"
  eval "$(bash e2e/cluster/up.sh)"
  # The process node runs any image whose name contains "reverie" as the binary just built.
  IMAGE_REPOSITORY="reverie"
fi

say "Installing reverie with its Helm chart into $RELEASE_NAMESPACE"
"$HELM" upgrade --install reverie charts/reverie \
  --namespace "$RELEASE_NAMESPACE" --create-namespace \
  --set image.repository="$IMAGE_REPOSITORY" --set replicas=1 --wait --timeout "${TIMEOUT}s"
wait_until "the operator to lead and sync" \
  bash -c "kubectl -n '$RELEASE_NAMESPACE' get lease reverie-operator -o jsonpath='{.spec.holderIdentity}' | grep -q ."

say "Creating agent support-bot with the example transcripts in namespace $NAMESPACE"
SESSIONS="$HOME/.cache/reverie/demo/sessions"
rm -rf "$SESSIONS" && mkdir -p "$SESSIONS" && cp -R examples/sessions/. "$SESSIONS/"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NAMESPACE" apply -f - <<EOF
apiVersion: reverie.dev/v1alpha1
kind: Agent
metadata:
  name: support-bot
spec:
  model: claude-sonnet-4-5
  instructions: Help customers with billing questions. Be brief and precise.
  sessions:
    hostPath:
      path: $SESSIONS
  dreaming:
    approval: Review
---
apiVersion: reverie.dev/v1alpha1
kind: DreamSchedule
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Paris
  agents:
    names: [support-bot]
EOF
wait_until "the agent's first memory revision" \
  bash -c "kubectl -n '$NAMESPACE' get agent support-bot -o jsonpath='{.status.memory.revision}' | grep -qx 1"

say "Dreaming now: kubectl dream run support-bot"
kubectl dream run support-bot -n "$NAMESPACE"
proposal_name() {
  kubectl -n "$NAMESPACE" get dreamschedule nightly \
    -o jsonpath='{.status.lastRuns[?(@.agent=="support-bot")].proposal}'
}
wait_until "the dream Job's proposal" bash -c "[[ -n \"\$(kubectl -n '$NAMESPACE' get dreamschedule nightly -o jsonpath='{.status.lastRuns[?(@.agent==\"support-bot\")].proposal}')\" ]]"
PROPOSAL="$(proposal_name)"
wait_until "the operator to record the proposal's digest" \
  bash -c "kubectl -n '$NAMESPACE' get mp '$PROPOSAL' -o jsonpath='{.status.digest}' | grep -q sha256"

say "The review diff: kubectl dream diff $PROPOSAL"
kubectl dream diff "$PROPOSAL" -n "$NAMESPACE" --color always

say "Approving: kubectl dream approve $PROPOSAL"
kubectl dream approve "$PROPOSAL" -n "$NAMESPACE" --comment "approved in the demo"
wait_until "the proposal to be applied" \
  bash -c "kubectl -n '$NAMESPACE' get mp '$PROPOSAL' -o jsonpath='{.status.phase}' | grep -qx Applied"

say "The agent's new MEMORY.md (revision $(kubectl -n "$NAMESPACE" get mp "$PROPOSAL" -o jsonpath='{.status.appliedRevision}'))"
kubectl -n "$NAMESPACE" get configmap support-bot-memory -o jsonpath='{.data.MEMORY\.md}'
echo

say "Twelve later sessions, run with that memory; dreaming again"
cp examples/sessions-later/*.jsonl "$SESSIONS/"
kubectl dream run support-bot -n "$NAMESPACE"
wait_until "the second dream's proposal" bash -c "p=\"\$(kubectl -n '$NAMESPACE' get dreamschedule nightly -o jsonpath='{.status.lastRuns[?(@.agent==\"support-bot\")].proposal}')\"; [[ -n \"\$p\" && \"\$p\" != '$PROPOSAL' ]]"

say "Did the approved lessons help? kubectl dream history support-bot --effect"
kubectl dream history support-bot -n "$NAMESPACE" --effect

say "Review in your browser: the dashboard serves these pages on this machine, with your credentials"
echo "  kubectl dream dashboard -n $NAMESPACE   # then open http://127.0.0.1:3100 (Ctrl-C stops it)"

say "Done. To clean up:"
cat >&2 <<EOF
  kubectl delete namespace $NAMESPACE          # the agent, its memory and proposals
  $HELM uninstall reverie -n $RELEASE_NAMESPACE  # the operator (CRDs are kept)
  make cluster-down                             # the local control plane, if the demo started it
EOF
