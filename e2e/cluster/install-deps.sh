#!/usr/bin/env bash
# Installs what the local reverie control plane needs (idempotent):
#   - Debian packages: etcd-server, openssl, curl, kubernetes-client (only if
#     no kubectl is on PATH)
#   - kube-apiserver + kube-controller-manager v1.20.2, built from Debian's
#     `kubernetes` source package and cached in $REVERIE_CACHE/k8s-v1.20.2/.
# A warm machine does no apt work and no build. Progress goes to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

# Debian source version we expect (upstream 1.20.2 repackaged).
K8S_DEB_UPSTREAM_PATTERN='really1.20.2'
DEB_SRC_FILE=/etc/apt/sources.list.d/reverie-deb-src.sources

SUDO=()
if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

APT_LOG="$REVERIE_CACHE/apt.log"
apt_fail() {
    log "ERROR: $*; last lines of $APT_LOG:"
    tail -n 30 "$APT_LOG" >&2 || true
    exit 1
}

APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update (log: $APT_LOG)"
        "${SUDO[@]}" apt-get update -q >>"$APT_LOG" 2>&1 || apt_fail "apt-get update failed"
        APT_UPDATED=1
    fi
}

apt_install() {
    (($# > 0)) || return 0
    if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need to install Debian packages ($*) but not root and no sudo"
    fi
    mkdir -p "$REVERIE_CACHE"
    apt_update_once
    log "apt-get install $* (log: $APT_LOG)"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >>"$APT_LOG" 2>&1 ||
        apt_fail "apt-get install $* failed"
}

# ---------------------------------------------------------------------------
# 1. Runtime packages
# ---------------------------------------------------------------------------
need=()
if ! pkg_installed etcd-server || [[ ! -x "$ETCD_BIN" ]]; then need+=(etcd-server); fi
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
if ((${#need[@]} > 0)); then
    apt_install "${need[@]}"
else
    log "runtime packages present (etcd, openssl, curl, kubectl)"
fi
[[ -x "$ETCD_BIN" ]] || die "etcd binary $ETCD_BIN missing after installing etcd-server"
command -v kubectl >/dev/null 2>&1 || die "kubectl still not on PATH after installing kubernetes-client"

# ---------------------------------------------------------------------------
# 2. kube-apiserver / kube-controller-manager (built from Debian source)
# ---------------------------------------------------------------------------
k8s_cached() {
    [[ -x "$KUBE_APISERVER_BIN" && -x "$KUBE_CONTROLLER_MANAGER_BIN" ]]
}

if k8s_cached; then
    log "k8s $REVERIE_K8S_VERSION binaries cached in $K8S_BIN_DIR"
    exit 0
fi

mkdir -p "$REVERIE_CACHE"
# Serialise concurrent builds sharing one cache.
exec 8>"$REVERIE_CACHE/.k8s-build.lock"
if ! flock -n 8; then
    log "another build holds $REVERIE_CACHE/.k8s-build.lock, waiting for it"
    flock 8
fi
if k8s_cached; then
    log "k8s $REVERIE_K8S_VERSION binaries cached in $K8S_BIN_DIR (built concurrently)"
    exit 0
fi

log "k8s $REVERIE_K8S_VERSION binaries not cached; building from Debian source (takes several minutes)"

build_need=()
for p in golang-1.19-go make rsync golang-github-modern-go-reflect2-dev dpkg-dev; do
    pkg_installed "$p" || build_need+=("$p")
done
if ((${#build_need[@]} > 0)); then
    apt_install "${build_need[@]}"
fi
GO_BIN_DIR=/usr/lib/go-1.19/bin
[[ -x "$GO_BIN_DIR/go" ]] || die "$GO_BIN_DIR/go missing (golang-1.19-go)"
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -d "$REFLECT2_SRC" ]] || die "$REFLECT2_SRC missing (golang-github-modern-go-reflect2-dev)"

# --- deb-src entries, derived from the machine's existing Debian sources ----
have_kubernetes_source() {
    apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes$'
}

# Emits deb822 "deb-src" stanzas for every enabled Debian "deb" entry found
# in the existing apt configuration (deb822 *.sources and one-line *.list).
derive_deb_src() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" && "$f" != "$DEB_SRC_FILE" ]] || continue
        awk -v src="$f" '
            function flush() {
                if (n > 0 && types ~ /(^|[ \t])deb([ \t]|$)/ && types !~ /deb-src/ &&
                    uris ~ /debian/ && (signed == "" || signed ~ /debian-archive-keyring/) &&
                    tolower(enabled) != "no") {
                    printf "# derived from %s\n", src
                    printf "Types: deb-src\n"
                    for (i = 1; i <= n; i++) print lines[i]
                    print ""
                }
                n = 0; types = ""; uris = ""; signed = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1)
                if (key == "types:") { sub(/^[^:]*:[ \t]*/, ""); types = $0; next }
                if (key == "uris:") { v = $0; sub(/^[^:]*:[ \t]*/, "", v); uris = v }
                if (key == "signed-by:") { v = $0; sub(/^[^:]*:[ \t]*/, "", v); signed = v }
                if (key == "enabled:") { v = $0; sub(/^[^:]*:[ \t]*/, "", v); enabled = v }
                lines[++n] = $0
            }
            END { flush() }
        ' "$f"
    done
    # One-line style: "deb [opts] URI suite comp..." -> deb822 stanza.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk -v src="$f" '
            $1 == "deb" {
                i = 2; opts = ""
                if ($2 ~ /^\[/) {
                    while (i <= NF) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } i++ }
                }
                uri = $i; suite = $(i + 1); comps = ""
                for (j = i + 2; j <= NF; j++) comps = comps " " $j
                if (uri !~ /debian/) next
                if (opts ~ /signed-by=/ && opts !~ /debian-archive-keyring/) next
                printf "# derived from %s\n", src
                printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents:%s\n", uri, suite, comps
                if (match(opts, /signed-by=[^] ]+/))
                    printf "Signed-By: %s\n", substr(opts, RSTART + 10, RLENGTH - 10)
                print ""
            }
        ' "$f"
    done
}

if ! have_kubernetes_source; then
    derived=$(derive_deb_src)
    [[ -n "$derived" ]] || die "found no Debian 'deb' entries in /etc/apt to derive deb-src entries from"
    log "adding deb-src entries in $DEB_SRC_FILE (derived from existing Debian apt sources)"
    printf '# Written by reverie e2e/cluster/install-deps.sh to fetch the kubernetes source package.\n%s\n' \
        "$derived" | "${SUDO[@]}" tee "$DEB_SRC_FILE.tmp" >/dev/null
    "${SUDO[@]}" mv -f "$DEB_SRC_FILE.tmp" "$DEB_SRC_FILE"
    APT_UPDATED=0
    apt_update_once
    have_kubernetes_source || die "apt-cache showsrc kubernetes finds nothing even with $DEB_SRC_FILE"
fi

# --- fetch, patch, build ----------------------------------------------------
BUILD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/reverie-k8s-build.XXXXXX")
# world-readable so apt's _apt sandbox user can write the download
chmod 755 "$BUILD_DIR"
cleanup() { rm -rf "$BUILD_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
BUILD_LOG="$REVERIE_CACHE/k8s-build.log"
: >"$BUILD_LOG"

build_fail() {
    log "ERROR: $*"
    log "last lines of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2 || true
    exit 1
}

log "downloading kubernetes source package into $BUILD_DIR"
(cd "$BUILD_DIR" && apt-get source --download-only kubernetes) >>"$BUILD_LOG" 2>&1 ||
    build_fail "apt-get source --download-only kubernetes failed"
shopt -s nullglob
dscs=("$BUILD_DIR"/kubernetes_*.dsc)
shopt -u nullglob
((${#dscs[@]} == 1)) || build_fail "expected exactly one kubernetes_*.dsc in $BUILD_DIR, got ${#dscs[@]}"
[[ "${dscs[0]}" == *"$K8S_DEB_UPSTREAM_PATTERN"* ]] ||
    build_fail "unexpected kubernetes source version $(basename "${dscs[0]}") (want *$K8S_DEB_UPSTREAM_PATTERN*)"
log "unpacking $(basename "${dscs[0]}") (dpkg-source -x, applies Debian patches)"
(cd "$BUILD_DIR" && dpkg-source -x "${dscs[0]}" src) >>"$BUILD_LOG" 2>&1 ||
    build_fail "dpkg-source -x failed"
SRC="$BUILD_DIR/src"

# reflect2 in the vendored tree faults under Go 1.19 (reflect2.UnsafeIterate);
# use Debian's Go-1.19-compatible copy instead.
log "replacing vendor/github.com/modern-go/reflect2 with Debian's packaged copy"
[[ -d "$SRC/vendor/github.com/modern-go/reflect2" ]] || build_fail "vendored reflect2 not found in source tree"
shopt -s nullglob
reflect2_files=("$REFLECT2_SRC"/*.go "$REFLECT2_SRC"/*.s)
shopt -u nullglob
((${#reflect2_files[@]} > 0)) || build_fail "no .go/.s files in $REFLECT2_SRC"
# Replace, not merge: the vendored v1.0.1 has files (go_above_17.go, ...) that
# v1.0.2 dropped and that would clash with the new ones.
rm -f "$SRC"/vendor/github.com/modern-go/reflect2/*.go "$SRC"/vendor/github.com/modern-go/reflect2/*.s
cp -f "${reflect2_files[@]}" "$SRC/vendor/github.com/modern-go/reflect2/"

cat >"$BUILD_DIR/version.env" <<'EOF'
KUBE_GIT_VERSION='v1.20.2'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
KUBE_GIT_TREE_STATE='clean'
EOF

log "building kube-apiserver and kube-controller-manager (log: $BUILD_LOG)"
build_start=$SECONDS
(
    cd "$SRC"
    export PATH="$GO_BIN_DIR:$PATH"
    export GOPROXY=off
    export GOFLAGS=""
    export GOCACHE="$BUILD_DIR/gocache"
    export KUBE_GIT_VERSION_FILE="$BUILD_DIR/version.env"
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
) >>"$BUILD_LOG" 2>&1 || build_fail "kubernetes build failed"
log "build finished in $((SECONDS - build_start))s"

for b in kube-apiserver kube-controller-manager; do
    out="$SRC/_output/bin/$b"
    [[ -x "$out" ]] || build_fail "build produced no $out"
    ver=$("$out" --version 2>&1 || true)
    [[ "$ver" == "Kubernetes $REVERIE_K8S_VERSION" ]] || build_fail "$b --version says '$ver'"
done

# Install atomically: copy to a temp name in the cache dir, then rename.
# The apiserver goes last so a half-installed cache never looks complete.
mkdir -p "$K8S_BIN_DIR"
for b in kube-controller-manager kube-apiserver; do
    cp "$SRC/_output/bin/$b" "$K8S_BIN_DIR/.$b.tmp.$$"
    chmod 755 "$K8S_BIN_DIR/.$b.tmp.$$"
    mv -f "$K8S_BIN_DIR/.$b.tmp.$$" "$K8S_BIN_DIR/$b"
done
log "installed k8s $REVERIE_K8S_VERSION binaries into $K8S_BIN_DIR"
