//! The `reverie operator` process: start-up checks, leader election, the controllers, the
//! health/metrics endpoint and graceful shutdown.

pub mod health;
pub mod http;
pub mod leader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, Client, Config, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::api::{Agent, DreamSchedule, MemoryProposal};
use crate::controller::{self, Context, SystemClock};
use crate::errors::error_chain;
use crate::metrics::Metrics;
use health::{Health, Leadership};

/// How long start-up waits for the API server before giving up with a clear error.
const API_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the operator process.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// Address of the `/healthz`, `/readyz` and `/metrics` endpoint.
    pub listen: SocketAddr,
    /// Take part in leader election (turn off only for a single replica run by hand).
    pub leader_election: bool,
    /// Namespace of the leader Lease; defaults to the pod's namespace or the kubeconfig's.
    pub lease_namespace: Option<String>,
    pub lease_name: String,
    /// This replica's identity in the election; defaults to the pod name or host name.
    pub identity: Option<String>,
    /// Image of the Jobs the operator creates (memory apply, dream passes).
    pub image: String,
    /// Seconds a finished memory apply Job is kept.
    pub apply_job_ttl_seconds: i32,
    /// Reconciles each controller runs at once.
    pub max_concurrent_reconciles: u16,
}

/// Why the operator could not start or had to stop. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "no Kubernetes configuration found (tried the in-cluster service account, then $KUBECONFIG or ~/.kube/config): {0}"
    )]
    NoConfig(String),
    #[error("cannot reach the Kubernetes API server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "CustomResourceDefinition {0} is not installed: apply crds/ (or `reverie crds | kubectl apply -f -`, or install the Helm chart)"
    )]
    CrdMissing(String),
    #[error("cannot list {resource} on the API server: {reason}")]
    CannotList { resource: String, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("leader election failed: {0}")]
    Election(String),
    #[error("stopped acting: {0}")]
    LostLeadership(String),
}

/// Loads the configuration and proves the API server answers, so a missing or unreachable
/// cluster fails fast with one line instead of retrying forever. Every request the client
/// sends is counted in `metrics`.
pub async fn connect(metrics: Arc<Metrics>) -> Result<Client, OperatorError> {
    let mut config = Config::infer()
        .await
        .map_err(|e| OperatorError::NoConfig(error_chain(&e)))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    let url = config.cluster_url.to_string();
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| OperatorError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?
        .with_layer(&crate::api_requests::counting_layer(metrics))
        .build();
    match tokio::time::timeout(API_PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(version)) => {
            tracing::info!(server = %url, version = %version.git_version, "connected to the API server");
            Ok(client)
        }
        Ok(Err(e)) => Err(OperatorError::Unreachable {
            url,
            reason: error_chain(&e),
        }),
        Err(_) => Err(OperatorError::Unreachable {
            url,
            reason: format!("no answer within {}s", API_PROBE_TIMEOUT.as_secs()),
        }),
    }
}

async fn ensure_served<K>(client: &Client) -> Result<(), OperatorError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let crd_name = format!("{}.{}", K::plural(&()), K::group(&()));
    match Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(OperatorError::CrdMissing(crd_name)),
        Err(e) => Err(OperatorError::CannotList {
            resource: crd_name,
            reason: error_chain(&e),
        }),
    }
}

/// Fails when any of the three CRDs is not served or not readable with our credentials.
pub async fn ensure_crds_served(client: &Client) -> Result<(), OperatorError> {
    ensure_served::<Agent>(client).await?;
    ensure_served::<DreamSchedule>(client).await?;
    ensure_served::<MemoryProposal>(client).await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
}

fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .map(|host| format!("{host}-{}", std::process::id()))
        .unwrap_or_else(|| format!("reverie-{}", std::process::id()))
}

/// Runs the operator until SIGTERM/SIGINT (Ok) or until it must stop acting (Err).
pub async fn run(options: OperatorOptions) -> Result<(), OperatorError> {
    let metrics = Arc::new(Metrics::default());
    let client = connect(metrics.clone()).await?;
    ensure_crds_served(&client).await?;

    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let server = http::serve(options.listen, http::router(health.clone(), metrics.clone()), stopped())
        .await
        .map_err(|e| OperatorError::Listen {
            addr: options.listen,
            reason: e.to_string(),
        })?;
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            termination_signal().await;
            let _ = stop_tx.send(true);
        });
    }

    let lease = if options.leader_election {
        let config = leader::ElectionConfig {
            namespace: options
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| client.default_namespace().to_string()),
            lease_name: options.lease_name.clone(),
            identity: options.identity.clone().unwrap_or_else(default_identity),
        };
        tracing::info!(lease = %config.lease_name, namespace = %config.namespace, identity = %config.identity, "joining leader election");
        tokio::select! {
            acquired = leader::acquire(client.clone(), &config, health.clone()) => {
                Some(acquired.map_err(|e| OperatorError::Election(error_chain(&e)))?)
            }
            _ = stopped() => None,
        }
    } else {
        health.set_leadership(Leadership::Leader);
        None
    };
    if *stop_tx.borrow() {
        let _ = server.await;
        return Ok(());
    }

    let (caches, cache_writers) = controller::Caches::new();
    let ctx = Arc::new(
        Context::new(client, caches, metrics.clone(), Arc::new(SystemClock))
            .with_image(options.image.clone())
            .with_apply_job_ttl(options.apply_job_ttl_seconds),
    );
    let (synced_tx, mut synced_rx) = watch::channel(false);
    {
        let health = health.clone();
        tokio::spawn(async move {
            if synced_rx.wait_for(|synced| *synced).await.is_ok() {
                health.set_caches_synced(true);
            }
        });
    }
    let controllers = controller::run(
        ctx,
        cache_writers,
        options.max_concurrent_reconciles,
        stopped(),
        synced_tx,
    );
    let outcome = match lease.clone() {
        Some(manager) => {
            tokio::select! {
                _ = controllers => Ok(()),
                reason = leader::hold(manager, metrics.clone()) => {
                    // Stop reconciling at once: another replica may already be acting.
                    let _ = stop_tx.send(true);
                    Err(OperatorError::LostLeadership(reason))
                }
            }
        }
        None => {
            controllers.await;
            Ok(())
        }
    };
    let _ = stop_tx.send(true);
    if let Some(manager) = lease
        && outcome.is_ok()
        && let Err(error) = manager.release().await
    {
        tracing::warn!(%error, "could not release the leader lease; it expires on its own");
    }
    let _ = server.await;
    tracing::info!("operator stopped");
    outcome
}
