//! The Node object: registration, status heartbeats and the node Lease, so that
//! kube-controller-manager's node-lifecycle controller keeps the node Ready and untainted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Ctx;

const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
/// Reported as the kubelet version when the API server does not say its own: the oldest
/// Kubernetes reverie supports.
const FALLBACK_VERSION: &str = "v1.33.0";

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Labels of the node (the well-known ones a kubelet sets).
pub fn labels(node_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), node_name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch().to_string()),
    ])
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    read_trimmed("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The node's status at `now`; `since` is when it became Ready.
pub fn status(ctx: &Ctx, version: &str, since: Timestamp, now: Timestamp) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(ctx.host.cpus.max(32).to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", (ctx.host.memory_bytes / 1024).max(64 << 20))),
        ),
        ("pods".to_string(), Quantity("250".into())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ]);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    let machine_id = read_trimmed("/etc/machine-id");
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "process-node has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "process-node has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "process-node has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "process-node (test-only fake node) is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ctx.host.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: ctx.host.node_name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: format!("process-node://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            kube_proxy_version: version.to_string(),
            kubelet_version: version.to_string(),
            machine_id: machine_id.clone(),
            operating_system: "linux".into(),
            os_image: os_image(),
            system_uuid: machine_id,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn server_version(ctx: &Ctx) -> String {
    match ctx.client.apiserver_version().await {
        Ok(info) => info.git_version,
        Err(e) => {
            debug!("cannot read the API server version: {e}");
            FALLBACK_VERSION.to_string()
        }
    }
}

async fn ensure_node(ctx: &Ctx, version: &str, since: Timestamp) -> Result<Node> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let name = &ctx.host.node_name;
    let node = match nodes.get_opt(name).await? {
        Some(node) => {
            let patch = serde_json::json!({ "metadata": { "labels": ctx.node_labels } });
            nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            node
        }
        None => {
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(ctx.node_labels.clone()),
                    annotations: Some(BTreeMap::from([(
                        "node.alpha.kubernetes.io/ttl".to_string(),
                        "0".to_string(),
                    )])),
                    ..Default::default()
                },
                spec: None,
                status: Some(status(ctx, version, since, Timestamp::now())),
            };
            info!(node = %name, "registering node");
            nodes.create(&PostParams::default(), &node).await?
        }
    };
    patch_status(ctx, version, since).await?;
    Ok(node)
}

async fn patch_status(ctx: &Ctx, version: &str, since: Timestamp) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({ "status": status(ctx, version, since, Timestamp::now()) });
    nodes
        .patch_status(&ctx.host.node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

async fn renew_lease(ctx: &Ctx, node: &Node) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), LEASE_NAMESPACE);
    let name = &ctx.host.node_name;
    let now = MicroTime(Timestamp::now());
    if leases.get_opt(name).await?.is_some() {
        let patch = serde_json::json!({
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            }
        });
        leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    } else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                owner_references: node.metadata.uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid,
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                renew_time: Some(now),
                ..Default::default()
            }),
        };
        leases.create(&PostParams::default(), &lease).await?;
    }
    Ok(())
}

/// Register the node (retrying until the API server answers or shutdown).
pub async fn register(ctx: &Arc<Ctx>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let since = Timestamp::now();
    let mut delay = Duration::from_millis(500);
    loop {
        let version = server_version(ctx).await;
        match ensure_node(ctx, &version, since).await {
            Ok(node) => {
                if let Err(e) = renew_lease(ctx, &node).await {
                    warn!("cannot create the node lease (will retry): {e}");
                }
                info!(node = %ctx.host.node_name, %version, "node Ready");
                return Ok(());
            }
            Err(e) => warn!("cannot register the node (retrying): {e:#}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => bail!("stopped before the node was registered"),
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Keep the node Ready: status and Lease every `period`.
pub async fn heartbeat(ctx: Arc<Ctx>, period: Duration, mut shutdown: watch::Receiver<bool>) {
    let since = Timestamp::now();
    let version = server_version(&ctx).await;
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match patch_status(&ctx, &version, since).await {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                warn!("the Node object disappeared; registering it again");
                if let Err(e) = ensure_node(&ctx, &version, since).await {
                    warn!("cannot register the node again: {e:#}");
                }
            }
            Err(e) => warn!("node heartbeat failed: {e}"),
        }
        let nodes: Api<Node> = Api::all(ctx.client.clone());
        match nodes.get_opt(&ctx.host.node_name).await {
            Ok(Some(node)) => {
                if let Err(e) = renew_lease(&ctx, &node).await {
                    warn!("node lease renewal failed: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => warn!("cannot read the node: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_well_known_ones() {
        let l = labels("n1");
        assert_eq!(l["kubernetes.io/hostname"], "n1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert!(!l["kubernetes.io/arch"].is_empty());
    }
}
