//! `process-node`: **test-only tooling**, a stand-in for scheduler + kubelet on reverie's local
//! e2e control plane (etcd + kube-apiserver + kube-controller-manager, see `e2e/cluster/`). It
//! is its own crate, depending on kube and k8s-openapi but on no reverie code, and never ships.
//!
//! What it emulates:
//! - a `Node` (Ready, generous capacity, 127.0.0.1) with status heartbeats and a node Lease
//!   in `kube-node-lease`, so the node-lifecycle controller never taints it;
//! - scheduling: every pending pod whose `nodeSelector` matches the node's labels is bound
//!   to it through the `pods/binding` subresource (affinity, taints and resources ignored);
//! - the kubelet: init containers in order, then all containers, each as a local process
//!   (`command` + `args` with `$(VAR)` expansion, `env` / `envFrom` / `valueFrom`,
//!   `workingDir`), in a private mount namespace (`unshare --mount`) in which the pod's
//!   volumes are bind-mounted at their mount paths; restart policies with a small backoff;
//!   graceful deletion (SIGTERM, grace period, SIGKILL, then the final delete with grace 0);
//!   pod status through `pods/status`;
//! - termination messages: an empty per-container file is bind-mounted read-write at the
//!   container's `terminationMessagePath` (default `/dev/termination-log`) and its first
//!   4096 bytes become `state.terminated.message`; when it is empty, a failed container
//!   reports the tail of its stderr instead, under either `terminationMessagePolicy` (the
//!   kubelet only does that for `FallbackToLogsOnError`);
//! - the service-account token: requested with the TokenRequest API (falling back to the
//!   legacy token Secret when the API server has no token signer) and mounted with `ca.crt`
//!   and `namespace` at `/var/run/secrets/kubernetes.io/serviceaccount`, refreshed while the
//!   pod runs, so in-cluster clients talk to the real API server with the pod's own identity;
//! - PersistentVolumeClaims: a directory per claim under the state dir that survives pods;
//!   pending claims are bound to a hostPath PersistentVolume pointing at it.
//!
//! Mount namespace: each container starts as
//! `unshare --mount --propagation private -- sh -c '<mount script>; exec "$@"' argv...`, so
//! its bind mounts are invisible to the host and to other pods. Mount targets that do not
//! exist are created with `mkdir -p` (or an empty file for file mounts) on the host's real
//! filesystem: they stay behind as empty directories (and an empty `/dev/termination-log`),
//! which is harmless for a test machine.
//! The one exception is `/var/run/secrets`: a private tmpfs is mounted there first whenever
//! a target lies below it, so service-account directories never touch (or reveal) the host's.
//! Every container gets a clean environment (no host variables leak in, in particular no
//! `KUBECONFIG`) with the host's `PATH` and a per-pod `HOME`, so in-cluster clients
//! (`kube::Config::infer()`) end up on the mounted service-account token.
//!
//! State dir (`--state-dir`): `logs/<namespace>_<pod>_<container>.log` (stdout + stderr of
//! every run, with a banner line per start), `pods/<uid>/` (volumes, home, termination-message
//! files under `termination/<container>`; removed with the pod), `pvc/<namespace>/<claim>/`
//! (claim data).
//!
//! What it does not: images (a container whose command or image is `reverie` runs the
//! locally built `reverie` binary, anything else runs the host's binaries), network and PID
//! isolation (every pod has IP 127.0.0.1 and shares the host's ports), Services, probes
//! (containers are Ready once started), resource limits, security contexts (everything runs
//! as root), ephemeral containers, exec/logs/port-forward through the API (read the log
//! files under `<state>/logs/` instead).

mod env;
mod node;
mod pods;
mod process;
mod pvc;
mod refs;
mod status;
mod volumes;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use kube::Client;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Command line of `process-node`.
#[derive(Debug, Parser)]
#[command(
    name = "process-node",
    about = "Test-only fake node for reverie's e2e control plane: binds pending pods and runs \
             their containers as local processes"
)]
pub struct Cli {
    /// Kubeconfig with node (or admin) credentials for the API server.
    #[arg(long, env = "PROCESS_NODE_KUBECONFIG")]
    pub kubeconfig: PathBuf,

    /// Name of the Node object to register.
    #[arg(long, env = "PROCESS_NODE_NAME", default_value = "process-node")]
    pub node_name: String,

    /// Where pod directories, logs and PVC data live (default: `$REVERIE_CLUSTER_DIR/node`,
    /// or `$HOME/.cache/reverie/cluster/node` when that is unset).
    #[arg(long, env = "PROCESS_NODE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// The `reverie` binary built from the tree, run for containers of reverie images.
    #[arg(long, env = "REVERIE_BIN")]
    pub reverie_bin: Option<PathBuf>,

    /// HTTPS URL of the API server as pods should reach it (sets KUBERNETES_SERVICE_HOST
    /// and KUBERNETES_SERVICE_PORT); default: the kubeconfig's server.
    #[arg(long, env = "REVERIE_API_SERVER")]
    pub api_server: Option<String>,

    /// CA certificate (PEM) of the API server, mounted as the pods' `ca.crt`; default: the
    /// `kube-root-ca.crt` ConfigMap of the pod's namespace.
    #[arg(long, env = "REVERIE_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Seconds between node status / lease heartbeats.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_secs: u64,

    /// How long a pod that cannot be set up (missing ConfigMap, Secret, claim...) is retried
    /// before it is marked Failed. Pods with `restartPolicy: Always` are retried forever,
    /// like the kubelet does.
    #[arg(long, default_value_t = 10)]
    pub setup_retry_secs: u64,

    /// Do not bind pending PersistentVolumeClaims to hostPath volumes under the state dir.
    #[arg(long)]
    pub no_pvc_binder: bool,
}

/// Absolute paths of the host tools used to start a pod's processes. Resolved once, so a
/// container's own `PATH` cannot break its mount script.
#[derive(Debug, Clone)]
pub struct Tools {
    pub unshare: PathBuf,
    pub sh: PathBuf,
    pub mount: PathBuf,
    pub mkdir: PathBuf,
}

/// What every pod worker shares.
pub struct Ctx {
    pub client: Client,
    pub host: env::Host,
    pub state_dir: PathBuf,
    pub ca_pem: Option<Vec<u8>>,
    pub tools: Tools,
    pub setup_retry: Duration,
    /// Labels of the registered node (used to honour `nodeSelector`).
    pub node_labels: std::collections::BTreeMap<String, String>,
}

impl Ctx {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }
}

/// Entry point of the binary.
fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("process-node failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cli.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", cli.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .context("loading kubeconfig")?;
    let api_url = cli.api_server.clone().unwrap_or_else(|| config.cluster_url.to_string());
    let (api_host, api_port) = env::split_api_url(&api_url)
        .with_context(|| format!("cannot take host and port from API server URL {api_url:?}"))?;
    let client = Client::try_from(config).context("building the API client")?;

    let ca_pem = match &cli.ca_file {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?),
        None => {
            warn!("no REVERIE_CA_FILE: pods get ca.crt from the kube-root-ca.crt ConfigMap");
            None
        }
    };
    let state_dir = match cli.state_dir.clone() {
        Some(dir) => dir,
        None => match std::env::var_os("REVERIE_CLUSTER_DIR") {
            Some(cluster) => PathBuf::from(cluster).join("node"),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set; pass --state-dir")?;
                PathBuf::from(home).join(".cache/reverie/cluster/node")
            }
        },
    };
    for sub in ["pods", "logs", "pvc"] {
        std::fs::create_dir_all(state_dir.join(sub))
            .with_context(|| format!("creating {}", state_dir.join(sub).display()))?;
    }
    let state_dir = std::fs::canonicalize(&state_dir).unwrap_or(state_dir);

    // Kept as a path (not required to exist yet: the tree may still be building).
    let reverie_bin = match &cli.reverie_bin {
        Some(bin) => {
            let bin = std::path::absolute(bin).unwrap_or_else(|_| bin.clone());
            if !process::is_executable(&bin) {
                warn!(
                    "--reverie-bin {} is not an executable file (yet): reverie pods will fail \
                     until it is",
                    bin.display()
                );
            }
            Some(bin)
        }
        None => {
            warn!("no --reverie-bin / REVERIE_BIN: pods of reverie images will fail");
            None
        }
    };
    let host_path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let tools = Tools {
        unshare: find_tool("unshare", &host_path)?,
        sh: find_tool("sh", &host_path)?,
        mount: find_tool("mount", &host_path)?,
        mkdir: find_tool("mkdir", &host_path)?,
    };
    let host = env::Host::detect(&cli.node_name, api_host, api_port, host_path, reverie_bin);

    let node_labels = node::labels(&cli.node_name);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        host,
        state_dir,
        ca_pem,
        tools,
        setup_retry: Duration::from_secs(cli.setup_retry_secs),
        node_labels,
    });
    info!(
        node = %ctx.host.node_name,
        state_dir = %ctx.state_dir.display(),
        api = %api_url,
        "process-node starting (test-only fake node)"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    node::register(&ctx, shutdown_rx.clone()).await?;
    let heartbeat = tokio::spawn(node::heartbeat(
        ctx.clone(),
        Duration::from_secs(cli.heartbeat_secs.max(1)),
        shutdown_rx.clone(),
    ));
    let pvc_binder = if cli.no_pvc_binder {
        None
    } else {
        Some(tokio::spawn(pvc::run(ctx.clone(), shutdown_rx.clone())))
    };
    let dispatcher = tokio::spawn(pods::run(ctx.clone(), shutdown_rx.clone()));

    wait_for_signal().await;
    info!("signal received: stopping pod processes");
    let _ = shutdown_tx.send(true);
    if let Err(e) = dispatcher.await {
        warn!("pod dispatcher ended abnormally: {e}");
    }
    heartbeat.abort();
    if let Some(binder) = pvc_binder {
        binder.abort();
    }
    info!("process-node stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            warn!("cannot install signal handlers; falling back to ctrl-c");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn find_tool(name: &str, path: &str) -> Result<PathBuf> {
    for dir in path.split(':').chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
        if dir.is_empty() {
            continue;
        }
        let candidate = PathBuf::from(dir).join(name);
        if process::is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("`{name}` not found on PATH; process-node needs it to start pods")
}
