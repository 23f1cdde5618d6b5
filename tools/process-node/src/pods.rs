//! The pod dispatcher: one watch on all pods; pending pods are bound to this node (the
//! scheduler's job), pods bound here get a [`worker`](super::worker) each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Ctx;
use super::worker::{self, Update};

struct Entry {
    tx: watch::Sender<Update>,
    handle: JoinHandle<()>,
}

/// Should this node take `pod`? `Err` explains why not (for the PodScheduled condition).
pub fn schedulable(pod: &Pod, labels: &BTreeMap<String, String>) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err("pod has no spec".into());
    };
    if let Some(selector) = &spec.node_selector {
        for (k, v) in selector {
            if labels.get(k) != Some(v) {
                return Err(format!(
                    "0/1 nodes are available: 1 node(s) didn't match node selector \
                     ({k}={v}; process-node)"
                ));
            }
        }
    }
    Ok(())
}

/// Pods nobody else will schedule: default scheduler, not bound, not finished or deleted.
fn wants_binding(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let scheduler_ok = matches!(
        spec.scheduler_name.as_deref(),
        None | Some("") | Some("default-scheduler")
    );
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    scheduler_ok
        && spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && phase == "Pending"
}

pub async fn run(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let mut listing: Option<HashSet<String>> = None;
    let mut bind_attempts: HashMap<String, Instant> = HashMap::new();
    let mut reported_unschedulable: HashSet<String> = HashSet::new();
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => break,
            event = stream.next() => event,
        };
        let pod = match event {
            None => {
                warn!("pod watch ended; process-node cannot continue");
                break;
            }
            Some(Err(e)) => {
                warn!("pod watch error (retrying): {e}");
                continue;
            }
            Some(Ok(Event::Init)) => {
                listing = Some(HashSet::new());
                continue;
            }
            Some(Ok(Event::InitDone)) => {
                // Pods that vanished while the watch was down never sent a Delete.
                if let Some(seen) = listing.take() {
                    workers.retain(|uid, entry| {
                        let keep = seen.contains(uid);
                        if !keep {
                            let _ = entry.tx.send(Update::Gone);
                        }
                        keep
                    });
                    bind_attempts.retain(|uid, _| seen.contains(uid));
                    reported_unschedulable.retain(|uid| seen.contains(uid));
                }
                continue;
            }
            Some(Ok(Event::Delete(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(entry) = workers.remove(&uid) {
                    let _ = entry.tx.send(Update::Gone);
                }
                bind_attempts.remove(&uid);
                reported_unschedulable.remove(&uid);
                continue;
            }
            Some(Ok(Event::InitApply(pod))) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                pod
            }
            Some(Ok(Event::Apply(pod))) => pod,
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        if node == ctx.host.node_name {
            let pod = Arc::new(pod);
            match workers.get(&uid) {
                Some(entry) => {
                    entry.tx.send_replace(Update::Pod(pod));
                }
                None => {
                    let (tx, rx) = watch::channel(Update::Pod(pod.clone()));
                    let handle = tokio::spawn(worker::run(ctx.clone(), pod, rx, shutdown.clone()));
                    workers.insert(uid, Entry { tx, handle });
                }
            }
        } else if node.is_empty() && wants_binding(&pod) {
            match schedulable(&pod, &ctx.node_labels) {
                Ok(()) => {
                    let recent = bind_attempts
                        .get(&uid)
                        .is_some_and(|t| t.elapsed() < Duration::from_secs(5));
                    if !recent {
                        bind_attempts.insert(uid, Instant::now());
                        tokio::spawn(bind(ctx.clone(), pod));
                    }
                }
                Err(why) => {
                    if reported_unschedulable.insert(uid) {
                        tokio::spawn(report_unschedulable(ctx.clone(), pod, why));
                    }
                }
            }
        }
    }
    info!(pods = workers.len(), "stopping pod workers");
    let (senders, handles): (Vec<_>, Vec<_>) = workers.into_values().map(|e| (e.tx, e.handle)).unzip();
    let all = futures::future::join_all(handles);
    if tokio::time::timeout(Duration::from_secs(30), all).await.is_err() {
        warn!("some pod workers did not stop in time");
    }
    drop(senders);
}

async fn bind(ctx: Arc<Ctx>, pod: Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(ctx.host.node_name.clone()),
            ..Default::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => info!(pod = %format!("{ns}/{name}"), "bound to this node"),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
            debug!(pod = %format!("{ns}/{name}"), "not bound: {}", s.message)
        }
        Err(e) => warn!(pod = %format!("{ns}/{name}"), "binding failed (will retry): {e}"),
    }
}

async fn report_unschedulable(ctx: Arc<Ctx>, pod: Pod, why: String) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    info!(pod = %format!("{ns}/{name}"), "not schedulable here: {why}");
    let patch = serde_json::json!({
        "status": {
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": why,
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now()
                ),
            }]
        }
    });
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        debug!(pod = %format!("{ns}/{name}"), "cannot report unschedulable: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn node_selector_must_match() {
        let labels = BTreeMap::from([
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/hostname".to_string(), "n".to_string()),
        ]);
        let mut spec = PodSpec::default();
        assert!(schedulable(&pod(spec.clone()), &labels).is_ok());
        spec.node_selector = Some(BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())]));
        assert!(schedulable(&pod(spec.clone()), &labels).is_ok());
        spec.node_selector = Some(BTreeMap::from([("gpu".to_string(), "yes".to_string())]));
        let err = schedulable(&pod(spec), &labels).unwrap_err();
        assert!(err.contains("gpu=yes"), "{err}");
    }

    #[test]
    fn only_unbound_pending_default_scheduler_pods_are_bound() {
        assert!(wants_binding(&pod(PodSpec::default())));
        assert!(!wants_binding(&pod(PodSpec {
            node_name: Some("other".into()),
            ..Default::default()
        })));
        assert!(!wants_binding(&pod(PodSpec {
            scheduler_name: Some("my-scheduler".into()),
            ..Default::default()
        })));
        let mut failed = pod(PodSpec::default());
        failed.status = Some(PodStatus {
            phase: Some("Failed".into()),
            ..Default::default()
        });
        assert!(!wants_binding(&failed));
    }
}
