//! `reverie collect`: an OTLP/HTTP receiver that turns the GenAI spans of running agents into
//! session files on the agents' sessions volume, where dream passes read them.
//!
//! [`decode`] reads the wire formats, [`server`] answers export requests, the core's
//! `collect::Assembler` groups spans into sessions within a byte budget, [`flush`] writes
//! complete ones through [`writer`], and [`agents`] says which Agents are served and where.

pub mod agents;
pub mod decode;
pub mod flush;
pub mod metrics;
pub mod server;
pub mod writer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use reverie_core::collect::{Assembler, Limits};
use tokio::sync::{Mutex, Notify};

use agents::{AgentDirectory, StaticAgents, WatchedAgents};
use server::Shared;

#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Address of the OTLP/HTTP receiver (`POST /v1/traces`).
    #[arg(long, default_value = "0.0.0.0:4318", env = "REVERIE_COLLECT_LISTEN")]
    pub listen: SocketAddr,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "REVERIE_COLLECT_ADMIN_LISTEN")]
    pub admin_listen: SocketAddr,
    /// Where the sessions volume is mounted.
    #[arg(long, env = "REVERIE_SESSIONS_ROOT")]
    pub sessions_root: PathBuf,
    /// Serve this agent without a cluster: `NAME=DIR` (DIR relative to --sessions-root);
    /// repeatable. Without it, the Agents of --namespace that ask for the collector are served.
    #[arg(long = "agent")]
    pub agents: Vec<String>,
    /// Namespace whose Agents are served (default: the pod's, else the kubeconfig's).
    #[arg(long, env = "REVERIE_COLLECT_NAMESPACE")]
    pub namespace: Option<String>,
    /// The PersistentVolumeClaim mounted at --sessions-root: only Agents keeping their sessions
    /// on it are served. Unset: every Agent that asks (a shared NFS or hostPath root).
    #[arg(long, env = "REVERIE_SESSIONS_CLAIM")]
    pub claim: Option<String>,
    /// A session is complete after this long without a new span (e.g. 2m).
    #[arg(long, default_value = "2m")]
    pub idle: String,
    /// Bytes of spans held before senders are asked to retry later (HTTP 503).
    #[arg(long, default_value_t = 64 << 20)]
    pub max_buffer_bytes: usize,
    /// Largest request body, before and after decompression.
    #[arg(long, default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Largest span kept.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_span_bytes: usize,
    /// What a refused sender is told to wait (`Retry-After`).
    #[arg(long, default_value = "5s")]
    pub retry_after: String,
}

/// Runs the receiver until SIGTERM or Ctrl-C, then writes every pending session.
pub async fn run(args: CollectArgs) -> Result<(), String> {
    let idle = humantime::parse_duration(&args.idle).map_err(|e| format!("--idle {:?}: {e}", args.idle))?;
    let retry_after = humantime::parse_duration(&args.retry_after)
        .map_err(|e| format!("--retry-after {:?}: {e}", args.retry_after))?;
    let agents = directory(&args).await?;
    let shared = Arc::new(Shared {
        assembler: Mutex::new(Assembler::new(Limits {
            max_buffered_bytes: args.max_buffer_bytes,
            max_span_bytes: args.max_span_bytes,
        })),
        agents,
        metrics: Arc::new(metrics::CollectMetrics::default()),
        pressure: Notify::new(),
        unwritten: AtomicUsize::new(0),
        max_buffered_bytes: args.max_buffer_bytes,
        max_body_bytes: args.max_body_bytes,
        retry_after,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let otlp = bind(args.listen).await?;
    let admin = bind(args.admin_listen).await?;
    let address = |l: &tokio::net::TcpListener| l.local_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
    // The bound addresses, not the flags: with port 0 this line is how a caller learns them.
    tracing::info!(otlp = %address(&otlp), admin = %address(&admin), root = %args.sessions_root.display(), "collecting sessions");
    let otlp = tokio::spawn({
        let router = server::otlp_router(shared.clone());
        let stopped = until_stopped(stopped.clone());
        async move { axum::serve(otlp, router).with_graceful_shutdown(stopped).await }
    });
    let admin = tokio::spawn({
        let router = server::admin_router(shared.clone());
        let stopped = until_stopped(stopped.clone());
        async move { axum::serve(admin, router).with_graceful_shutdown(stopped).await }
    });
    let flusher = tokio::spawn(flush::run(shared, idle, until_stopped(stopped)));
    crate::operator::termination_signal().await;
    let _ = stop.send(true);
    // Requests in flight finish before the last flush, so nothing they brought is lost.
    let _ = otlp.await;
    let _ = admin.await;
    let unwritten = flusher.await.map_err(|e| format!("the flusher failed: {e}"))?;
    if unwritten > 0 {
        return Err(format!(
            "{unwritten} sessions could not be written to {}",
            args.sessions_root.display()
        ));
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// `--agent` mappings, or the Agents of the namespace through a reflector (ready before the
/// receiver starts, so the first spans are not refused for want of a cache).
async fn directory(args: &CollectArgs) -> Result<Arc<dyn AgentDirectory>, String> {
    if !args.agents.is_empty() {
        let mut map = BTreeMap::new();
        for value in &args.agents {
            let (name, dir) = value
                .split_once('=')
                .ok_or_else(|| format!("--agent {value:?}: expected NAME=DIR"))?;
            map.insert(name.to_string(), args.sessions_root.join(dir));
        }
        return Ok(Arc::new(StaticAgents(map)));
    }
    let client = kube::Client::try_default().await.map_err(|e| {
        format!(
            "cannot reach the API server (or pass --agent NAME=DIR): {}",
            crate::errors::error_chain(&e)
        )
    })?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let (store, writer) = reflector::store();
    let api: kube::Api<crate::api::Agent> = kube::Api::namespaced(client, &namespace);
    let events = reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    tokio::spawn(events.for_each(|event| async move {
        if let Err(error) = event {
            tracing::warn!(%error, "watching Agents failed; retrying with backoff");
        }
    }));
    tokio::time::timeout(Duration::from_secs(60), store.wait_until_ready())
        .await
        .map_err(|_| {
            format!("Agents of namespace {namespace} could not be listed within 60 s (RBAC: get, list, watch agents)")
        })?
        .map_err(|e| e.to_string())?;
    tracing::info!(%namespace, agents = store.state().len(), "watching Agents");
    Ok(Arc::new(WatchedAgents {
        store,
        namespace,
        root: args.sessions_root.clone(),
        claim: args.claim.clone(),
    }))
}
