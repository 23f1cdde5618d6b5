# shellcheck shell=bash disable=SC2034
# Shared settings and helpers for the reverie local control-plane scripts.
# Sourced by install-deps.sh, up.sh and down.sh; not meant to be run directly.

# The Kubernetes release the local control plane runs. One variable: set it in the environment
# to try another release by hand (install-deps.sh retargets the build module at it).
REVERIE_K8S_VERSION="${REVERIE_K8S_VERSION:-v1.37.2}"

REVERIE_CACHE="${REVERIE_CACHE:-$HOME/.cache/reverie}"
K8S_BIN_DIR="$REVERIE_CACHE/k8s-$REVERIE_K8S_VERSION"
KUBE_APISERVER_BIN="$K8S_BIN_DIR/kube-apiserver"
KUBE_CONTROLLER_MANAGER_BIN="$K8S_BIN_DIR/kube-controller-manager"
ETCD_BIN="$K8S_BIN_DIR/etcd"
KUBECTL_BIN="$K8S_BIN_DIR/kubectl"

STATE="${REVERIE_CLUSTER_DIR:-$REVERIE_CACHE/cluster}"

ETCD_PORT="${REVERIE_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${REVERIE_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${REVERIE_APISERVER_PORT:-26443}"
KCM_PORT="${REVERIE_KCM_PORT:-20257}"

# Seconds to wait for a component to become healthy / to exit.
START_TIMEOUT="${REVERIE_START_TIMEOUT:-60}"
STOP_TIMEOUT="${REVERIE_STOP_TIMEOUT:-15}"

NODE_NAME="reverie-node"

# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager process-node)

# The minor of $REVERIE_K8S_VERSION ("v1.37.2" → 37).
k8s_minor() {
    local minor=${REVERIE_K8S_VERSION#v1.}
    printf '%s\n' "${minor%%.*}"
}

log() { printf '[reverie-cluster] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# True if $1 is a live (non-zombie) process.
pid_alive() {
    local pid=$1 state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/stat" ]] || return 1
    # Field 3 of /proc/PID/stat is the state; the command name (field 2) may
    # contain spaces, so strip everything up to the last ')'.
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

# True if $1 is alive and its command line mentions our state dir, i.e. it is
# one of the processes we started (guards against PID reuse).
pid_is_ours() {
    local pid=$1 cmdline
    pid_alive "$pid" || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *"$STATE/"* ]]
}

pid_file() { printf '%s/pids/%s.pid\n' "$STATE" "$1"; }
log_file() { printf '%s/logs/%s.log\n' "$STATE" "$1"; }

# Prints the recorded PID of component $1 (empty if none / garbage).
read_pid() {
    local f pid=""
    f=$(pid_file "$1")
    [[ -f "$f" ]] && pid=$(head -n1 "$f" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
    return 0
}

# True if component $1 has a pid file pointing at a live process of ours.
component_running() {
    local pid
    pid=$(read_pid "$1")
    [[ -n "$pid" ]] && pid_is_ours "$pid"
}

# True while any process of process group $1 exists (zombies excluded).
pgroup_alive() {
    local pgid=$1 p
    for p in /proc/[0-9]*; do
        [[ -r "$p/stat" ]] || continue
        # fields after "comm)": state ppid pgrp ...
        read -r -a f < <(sed -e 's/^.*) //' "$p/stat" 2>/dev/null) || continue
        if [[ "${f[2]:-}" == "$pgid" && "${f[0]:-}" != "Z" ]]; then
            return 0
        fi
    done
    return 1
}

# wait_until TIMEOUT_SECONDS CMD... : polls CMD every 0.2s; fails on timeout.
wait_until() {
    local timeout=$1
    shift
    local deadline=$((SECONDS + timeout))
    while ! "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

# Stop component $1: SIGTERM its recorded PID, wait, then SIGKILL the whole
# process group (every component runs in its own session, started by up.sh).
stop_component() {
    local name=$1 pidf pid
    pidf=$(pid_file "$name")
    [[ -f "$pidf" ]] || return 0
    pid=$(read_pid "$name")
    if [[ -z "$pid" ]]; then
        log "$name: pid file has no valid pid, removing it"
        rm -f "$pidf"
        return 0
    fi
    if pid_is_ours "$pid"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_until "$STOP_TIMEOUT" not_alive "$pid"; then
            log "$name (pid $pid) did not exit after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            wait_until 5 not_alive "$pid" || true
        fi
    elif pid_alive "$pid"; then
        log "$name: pid $pid is alive but is not ours (pid reused?), leaving it alone"
        rm -f "$pidf"
        return 0
    fi
    # Children left behind in the component's session/process group
    # (e.g. processes spawned by the process node).
    if pgroup_alive "$pid"; then
        log "$name: terminating leftover processes in process group $pid"
        kill -TERM -- "-$pid" 2>/dev/null || true
        if ! wait_until "$STOP_TIMEOUT" pgroup_dead "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            wait_until 5 pgroup_dead "$pid" || true
        fi
    fi
    rm -f "$pidf"
    if pid_alive "$pid" || pgroup_alive "$pid"; then
        log "$name: process (group) $pid is still alive"
        return 1
    fi
    return 0
}

not_alive() { ! pid_alive "$1"; }
pgroup_dead() { ! pgroup_alive "$1"; }
