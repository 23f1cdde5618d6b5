#!/usr/bin/env bash
# Installs what the local reverie control plane needs (idempotent) and prints the directory
# holding its binaries on stdout (progress goes to stderr):
#   - Debian packages: openssl and curl, only when missing;
#   - etcd, kube-apiserver, kube-controller-manager and kubectl of $REVERIE_K8S_VERSION, built
#     with the machine's Go from the k8s.io/kubernetes module (e2e/cluster/build/go.mod) and
#     cached in $REVERIE_CACHE/k8s-<version>/. A warm machine builds nothing.
# kubectl: a kubectl on PATH within the supported skew (±1 minor) is linked in instead of
# building one.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

SUDO=()
if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

# ---------------------------------------------------------------------------
# 1. Runtime packages
# ---------------------------------------------------------------------------
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]} > 0)); then
    if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need Debian packages (${need[*]}) but not root and no sudo"
    fi
    mkdir -p "$REVERIE_CACHE"
    log "apt-get install ${need[*]} (log: $REVERIE_CACHE/apt.log)"
    { "${SUDO[@]}" apt-get update -q && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${need[@]}"; } >>"$REVERIE_CACHE/apt.log" 2>&1 ||
        die "apt-get install ${need[*]} failed (see $REVERIE_CACHE/apt.log)"
fi

# ---------------------------------------------------------------------------
# 2. The control plane binaries, built from Go modules
# ---------------------------------------------------------------------------
SERVER_BINS=(etcd kube-apiserver kube-controller-manager)

servers_cached() {
    local b
    for b in "${SERVER_BINS[@]}"; do [[ -x "$K8S_BIN_DIR/$b" ]] || return 1; done
}

# The minor of a kubectl client ("1.36" → 36), empty when it cannot tell.
kubectl_minor() {
    "$1" version --client -o json 2>/dev/null |
        sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n1
}

# A kubectl on PATH that talks to $REVERIE_K8S_VERSION within the supported skew, or nothing.
usable_machine_kubectl() {
    local path minor want
    path=$(command -v kubectl 2>/dev/null) || return 1
    [[ "$path" != "$K8S_BIN_DIR/kubectl" ]] || return 1
    minor=$(kubectl_minor "$path")
    want=$(k8s_minor)
    [[ -n "$minor" ]] && ((minor >= want - 1 && minor <= want + 1)) || return 1
    printf '%s\n' "$path"
}

# Targets still missing from the cache; empty on a warm machine.
missing_targets() {
    servers_cached || printf '%s\n' k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager ./etcd
    [[ -x "$K8S_BIN_DIR/kubectl" ]] || usable_machine_kubectl >/dev/null || echo k8s.io/kubernetes/cmd/kubectl
}
link_machine_kubectl() {
    local machine
    [[ -x "$K8S_BIN_DIR/kubectl" ]] && return 0
    machine=$(usable_machine_kubectl) || return 0
    log "using the machine's kubectl $machine (within the skew of $REVERIE_K8S_VERSION)"
    mkdir -p "$K8S_BIN_DIR"
    ln -sfn "$machine" "$K8S_BIN_DIR/kubectl"
}

if [[ -z "$(missing_targets)" ]]; then
    link_machine_kubectl
    log "Kubernetes $REVERIE_K8S_VERSION binaries cached in $K8S_BIN_DIR"
    printf '%s\n' "$K8S_BIN_DIR"
    exit 0
fi

mkdir -p "$REVERIE_CACHE"
# Serialise concurrent builds sharing one cache.
exec 8>"$REVERIE_CACHE/.k8s-build.lock"
if ! flock -n 8; then
    log "another build holds $REVERIE_CACHE/.k8s-build.lock, waiting for it"
    flock 8
fi

command -v go >/dev/null 2>&1 || die "Go is needed to build the control plane (go.dev/doc/install)"

# The module to build: the committed one for the default version, else a copy retargeted at
# $REVERIE_K8S_VERSION (for trying another version by hand; its go.sum is made on the spot).
BUILD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/reverie-k8s-build.XXXXXX")
trap 'rm -rf "$BUILD_TMP"' EXIT
MODULE="$SCRIPT_DIR/build"
export GOMODCACHE="${GOMODCACHE:-$REVERIE_CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$REVERIE_CACHE/go/build}"
export GOFLAGS="-mod=mod -trimpath"
export CGO_ENABLED=0
BUILD_LOG="$REVERIE_CACHE/k8s-build.log"
: >"$BUILD_LOG"
build_fail() {
    log "ERROR: $*; last lines of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2 || true
    exit 1
}

pinned=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$MODULE/go.mod")
if [[ "$pinned" != "$REVERIE_K8S_VERSION" ]]; then
    log "retargeting the build module from $pinned to $REVERIE_K8S_VERSION"
    cp -r "$MODULE" "$BUILD_TMP/module"
    MODULE="$BUILD_TMP/module"
    staging="v0.${REVERIE_K8S_VERSION#v1.}"
    (
        cd "$MODULE"
        go mod edit -require "k8s.io/kubernetes@$REVERIE_K8S_VERSION"
        for m in $(go mod edit -json | sed -n 's/.*"Path": "\(k8s.io\/[^"]*\)".*/\1/p' | sort -u); do
            [[ "$m" == k8s.io/kubernetes ]] || go mod edit -replace "$m=$m@$staging"
        done
        rm -f go.sum
        go mod tidy
    ) >>"$BUILD_LOG" 2>&1 || build_fail "could not resolve k8s.io/kubernetes $REVERIE_K8S_VERSION from the module proxy"
fi

# The version the binaries report (/version, --version), as upstream's release build stamps it.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$REVERIE_K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(k8s_minor)"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mapfile -t targets < <(missing_targets)

log "building Kubernetes $REVERIE_K8S_VERSION (${targets[*]##*/}) with $(go version | cut -d' ' -f3); log: $BUILD_LOG"
log "a cold build downloads ~1 GB of modules and takes 10-20 minutes on 2 cores"
build_start=$SECONDS
mkdir -p "$BUILD_TMP/bin"
(cd "$MODULE" && go build -ldflags "$ldflags" -o "$BUILD_TMP/bin/" "${targets[@]}") >>"$BUILD_LOG" 2>&1 ||
    build_fail "go build failed"
log "built in $((SECONDS - build_start))s"

if [[ -f "$BUILD_TMP/bin/kube-apiserver" ]]; then
    ver=$("$BUILD_TMP/bin/kube-apiserver" --version 2>&1 || true)
    [[ "$ver" == "Kubernetes $REVERIE_K8S_VERSION" ]] || build_fail "kube-apiserver --version says '$ver'"
fi

# Install atomically, kube-apiserver last, so a half-installed cache never looks complete.
mkdir -p "$K8S_BIN_DIR"
link_machine_kubectl
for b in kubectl etcd kube-controller-manager kube-apiserver; do
    [[ -f "$BUILD_TMP/bin/$b" ]] || continue
    cp "$BUILD_TMP/bin/$b" "$K8S_BIN_DIR/.$b.tmp.$$"
    chmod 755 "$K8S_BIN_DIR/.$b.tmp.$$"
    mv -f "$K8S_BIN_DIR/.$b.tmp.$$" "$K8S_BIN_DIR/$b"
done
log "installed Kubernetes $REVERIE_K8S_VERSION binaries into $K8S_BIN_DIR"
printf '%s\n' "$K8S_BIN_DIR"
