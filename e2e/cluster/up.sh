#!/usr/bin/env bash
# Starts a throwaway local Kubernetes control plane ($REVERIE_K8S_VERSION) on 127.0.0.1:
# etcd + kube-apiserver + kube-controller-manager (and, if $PROCESS_NODE_BIN is
# set, reverie's process node). All state lives in $REVERIE_CLUSTER_DIR.
# Stdout: two lines to eval, `export KUBECONFIG=<path>` and `export PATH=<k8s bin dir>:"$PATH"`.
# Everything else: stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$SCRIPT_DIR/common.sh"

mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd -P)"
PKI="$STATE/pki"
KUBECONFIG_FILE="$STATE/kubeconfig"
TOKEN_FILE="$STATE/admin-token"
API_URL="https://127.0.0.1:$APISERVER_PORT"
mkdir -p "$STATE/logs" "$STATE/pids"

# One up.sh at a time per state dir. fd 9 is closed for every daemon we start.
exec 9>"$STATE/.up.lock"
flock -n 9 || die "another up.sh is running against $STATE"

# What the caller evals: the admin kubeconfig, and the kubectl of the server's version first on PATH.
print_export() {
    printf 'export KUBECONFIG=%s\n' "$KUBECONFIG_FILE"
    # shellcheck disable=SC2016 # $PATH is expanded by the caller's eval
    printf 'export PATH=%s:"$PATH"\n' "$K8S_BIN_DIR"
}

kc() { "$KUBECTL_BIN" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=5s "$@"; }

api_ready() {
    [[ -r "$TOKEN_FILE" && -r "$PKI/ca.crt" ]] || return 1
    curl -fsS --max-time 3 --cacert "$PKI/ca.crt" \
        -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
        "$API_URL/readyz" >/dev/null 2>&1
}
etcd_healthy() {
    curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'
}
kcm_healthy() {
    curl -fsS --max-time 3 --cacert "$PKI/ca.crt" "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null |
        grep -qx ok
}
default_sa_ready() {
    # The ServiceAccount admission plugin refuses pods until their ServiceAccount exists;
    # kube-controller-manager creates `default` in each namespace.
    kc get serviceaccount default -n default -o name >/dev/null 2>&1
}
# The server's own account of its version, as clients see it.
server_version() {
    curl -fsS --max-time 3 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
        "$API_URL/version" 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p'
}
node_ready() {
    local status
    status=$(kc get node "$NODE_NAME" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) || return 1
    [[ "$status" == "True" ]]
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------
# Failure handling: stop whatever this invocation started, show the log.
# ---------------------------------------------------------------------------
STARTED=()
CURRENT=""
on_exit() {
    local rc=$?
    if ((rc != 0)); then
        if [[ -n "$CURRENT" ]]; then
            log "failed while starting $CURRENT; last lines of $(log_file "$CURRENT"):"
            tail -n 40 "$(log_file "$CURRENT")" >&2 2>/dev/null || true
        fi
        local i
        for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
            stop_component "${STARTED[i]}" || true
        done
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_daemon NAME CMD... : starts CMD in its own session, in the background,
# with stdout/stderr to $STATE/logs/NAME.log and its PID in $STATE/pids/NAME.pid.
start_daemon() {
    local name=$1
    shift
    local pidf logf
    pidf=$(pid_file "$name")
    logf=$(log_file "$name")
    rm -f "$pidf"
    CURRENT=$name
    log "starting $name (log: $logf)"
    # The inner shell records its own PID (after setsid, which may fork) and
    # then execs the real command, so the pid file names the real process.
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c 'echo "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$pidf" "$@" \
        </dev/null >"$logf" 2>&1 9>&- &
    STARTED+=("$name")
    wait_until 10 test -s "$pidf" || die "$name did not record its pid in $pidf"
}

# wait_healthy NAME TIMEOUT CHECK... : waits for CHECK while NAME stays alive.
wait_healthy() {
    local name=$1 timeout=$2
    shift 2
    local deadline=$((SECONDS + timeout)) pid
    pid=$(read_pid "$name")
    until "$@"; do
        pid_alive "$pid" || die "$name (pid $pid) exited during startup"
        ((SECONDS < deadline)) || die "$name not healthy after ${timeout}s"
        sleep 0.2
    done
}

start_process_node() {
    [[ -x "$PROCESS_NODE_BIN" ]] || die "PROCESS_NODE_BIN=$PROCESS_NODE_BIN is not an executable file"
    start_daemon process-node env \
        REVERIE_API_SERVER="$API_URL" REVERIE_CA_FILE="$PKI/ca.crt" \
        PROCESS_NODE_STATE_DIR="$STATE/node" \
        "$PROCESS_NODE_BIN" --kubeconfig "$KUBECONFIG_FILE" --node-name "$NODE_NAME"
    log "waiting for node $NODE_NAME to be Ready"
    wait_healthy process-node "$START_TIMEOUT" node_ready
    CURRENT=""
    log "node $NODE_NAME is Ready"
}

# ---------------------------------------------------------------------------
# Already running?
# ---------------------------------------------------------------------------
if component_running etcd && component_running kube-apiserver &&
    component_running kube-controller-manager && api_ready; then
    log "control plane from $STATE is already running and healthy: Kubernetes $(server_version) at $API_URL"
    if [[ -n "${PROCESS_NODE_BIN:-}" ]]; then
        if component_running process-node; then
            log "process node already running"
        else
            start_process_node
        fi
    fi
    print_export
    exit 0
fi

# Something partially up (or stale pid files): clean it up first.
for c in "${COMPONENTS[@]}"; do
    if [[ -f "$(pid_file "$c")" ]]; then
        log "found leftovers from a previous run; stopping them first"
        "$SCRIPT_DIR/down.sh" >&2 || die "could not stop leftovers (run down.sh)"
        break
    fi
done

# ---------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------
bash "$SCRIPT_DIR/install-deps.sh" >/dev/null 9>&- || die "install-deps.sh failed"

for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT"; do
    if port_in_use "$p"; then
        die "port 127.0.0.1:$p is already in use (set REVERIE_*_PORT to move it)"
    fi
done

# ---------------------------------------------------------------------------
# PKI, tokens, kubeconfig (regenerated on every start)
# ---------------------------------------------------------------------------
log "generating certificates and tokens in $PKI"
rm -rf "$PKI"
mkdir -p "$PKI"
chmod 700 "$PKI"
ossl() { openssl "$@" >>"$STATE/logs/openssl.log" 2>&1 || die "openssl $1 failed (see $STATE/logs/openssl.log)"; }
: >"$STATE/logs/openssl.log"

cat >"$PKI/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
EOF
cat >"$PKI/serving.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
EOF

ossl genrsa -out "$PKI/ca.key" 2048
ossl req -new -key "$PKI/ca.key" -subj "/CN=reverie-e2e-ca" -out "$PKI/ca.csr"
ossl x509 -req -in "$PKI/ca.csr" -signkey "$PKI/ca.key" -days 3650 -sha256 \
    -extfile "$PKI/ca.ext" -out "$PKI/ca.crt"
ossl genrsa -out "$PKI/serving.key" 2048
ossl req -new -key "$PKI/serving.key" -subj "/CN=127.0.0.1" -out "$PKI/serving.csr"
ossl x509 -req -in "$PKI/serving.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/serving.ext" -out "$PKI/serving.crt"
# Front-proxy client cert (aggregation layer); also gives kube-controller-manager's
# delegated authn a request-header CA, so it does not log errors about it.
cat >"$PKI/front-proxy-client.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
ossl genrsa -out "$PKI/front-proxy-client.key" 2048
ossl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr"
ossl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt"
ossl genrsa -out "$PKI/sa.key" 2048
ossl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

TOKEN=$(openssl rand -hex 32)
printf '%s\n' "$TOKEN" >"$TOKEN_FILE"
chmod 600 "$TOKEN_FILE"
printf '%s,admin,admin,"system:masters"\n' "$TOKEN" >"$PKI/tokens.csv"

write_kubeconfig() { # path user
    local ca_b64
    ca_b64=$(base64 -w0 <"$PKI/ca.crt")
    cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: reverie
  cluster:
    server: $API_URL
    certificate-authority-data: $ca_b64
users:
- name: $2
  user:
    token: $TOKEN
contexts:
- name: reverie
  context:
    cluster: reverie
    user: $2
current-context: reverie
preferences: {}
EOF
    chmod 600 "$1.tmp"
    mv -f "$1.tmp" "$1"
}
write_kubeconfig "$KUBECONFIG_FILE" admin
write_kubeconfig "$STATE/kube-controller-manager.kubeconfig" admin

# ---------------------------------------------------------------------------
# etcd (fresh data dir every time)
# ---------------------------------------------------------------------------
rm -rf "$STATE/etcd"
mkdir -p "$STATE/etcd"
chmod 700 "$STATE/etcd"
start_daemon etcd "$ETCD_BIN" \
    --name reverie \
    --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "reverie=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new \
    --unsafe-no-fsync \
    --log-level warn
wait_healthy etcd "$START_TIMEOUT" etcd_healthy
log "etcd healthy on 127.0.0.1:$ETCD_PORT"

# ---------------------------------------------------------------------------
# kube-apiserver
# ---------------------------------------------------------------------------
start_daemon kube-apiserver "$KUBE_APISERVER_BIN" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --secure-port "$APISERVER_PORT" \
    --cert-dir "$PKI/apiserver-generated" \
    --tls-cert-file "$PKI/serving.crt" \
    --tls-private-key-file "$PKI/serving.key" \
    --client-ca-file "$PKI/ca.crt" \
    --token-auth-file "$PKI/tokens.csv" \
    --requestheader-client-ca-file "$PKI/ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --authorization-mode Node,RBAC \
    --anonymous-auth=true \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-key-file "$PKI/sa.pub" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 \
    --enable-admission-plugins NodeRestriction \
    --endpoint-reconciler-type none \
    --allow-privileged=true \
    --profiling=false
wait_healthy kube-apiserver "$START_TIMEOUT" api_ready
log "kube-apiserver ready at $API_URL"

# ---------------------------------------------------------------------------
# kube-controller-manager
# ---------------------------------------------------------------------------
start_daemon kube-controller-manager "$KUBE_CONTROLLER_MANAGER_BIN" \
    --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 \
    --secure-port "$KCM_PORT" \
    --cert-dir "$PKI/kcm-generated" \
    --tls-cert-file "$PKI/serving.crt" \
    --tls-private-key-file "$PKI/serving.key" \
    --leader-elect=false \
    --controllers '*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" \
    --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --cluster-name reverie \
    --profiling=false
wait_healthy kube-controller-manager "$START_TIMEOUT" kcm_healthy
log "kube-controller-manager healthy on 127.0.0.1:$KCM_PORT"

CURRENT=kube-controller-manager
log "waiting for ServiceAccount default/default"
wait_healthy kube-controller-manager "$START_TIMEOUT" default_sa_ready
CURRENT=""

if [[ -n "${PROCESS_NODE_BIN:-}" ]]; then
    start_process_node
fi

log "control plane up: Kubernetes $(server_version) at $API_URL (state in $STATE)"
print_export
