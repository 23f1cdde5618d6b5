#!/usr/bin/env bash
# Stops the processes recorded in $REVERIE_CLUSTER_DIR/pids/*.pid (process node,
# kube-controller-manager, kube-apiserver, etcd): SIGTERM, bounded wait, then
# SIGKILL. Removes the pid files, keeps logs. Safe to run when nothing is up.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

if [[ ! -d "$STATE/pids" ]]; then
    log "nothing to stop (no $STATE/pids)"
    exit 0
fi
STATE="$(cd "$STATE" && pwd -P)"

failed=0
stopped_any=0
# Known components in reverse start order, then any other pid file.
order=()
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do order+=("${COMPONENTS[i]}"); done
shopt -s nullglob
for f in "$STATE"/pids/*.pid; do
    n=$(basename "$f" .pid)
    [[ " ${order[*]} " == *" $n "* ]] || order+=("$n")
done
shopt -u nullglob

pids=()
for name in "${order[@]}"; do
    pidf=$(pid_file "$name")
    [[ -f "$pidf" ]] || continue
    stopped_any=1
    pid=$(read_pid "$name")
    [[ -n "$pid" ]] && pids+=("$pid")
    stop_component "$name" || failed=1
done

# Verify nothing we recorded is left.
for pid in "${pids[@]}"; do
    if pid_alive "$pid" && pid_is_ours "$pid"; then
        log "ERROR: pid $pid is still running"
        failed=1
    fi
done

if ((failed)); then
    die "some processes could not be stopped"
fi
if ((stopped_any)); then
    log "stopped; logs kept in $STATE/logs"
else
    log "nothing to stop"
fi
