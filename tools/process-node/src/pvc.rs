//! A minimal volume provisioner: every pending PersistentVolumeClaim gets a pre-bound
//! hostPath PersistentVolume pointing at `<state>/pvc/<namespace>/<claim>` (the directory
//! pods of that claim mount), so kube-controller-manager's PV binder marks it Bound as a
//! real provisioner would. Deleting the claim deletes the volume and its data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Ctx;

const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const PROVISIONER: &str = "process-node";

pub fn claim_dir(state_dir: &std::path::Path, ns: &str, claim: &str) -> PathBuf {
    state_dir.join("pvc").join(ns).join(claim)
}

/// The PersistentVolume for `claim`, or `None` when it needs none (bound, being deleted...).
pub fn volume_for(claim: &PersistentVolumeClaim, dir: &str) -> Option<PersistentVolume> {
    let spec = claim.spec.as_ref()?;
    let uid = claim.metadata.uid.clone()?;
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if claim.metadata.deletion_timestamp.is_some()
        || !spec.volume_name.as_deref().unwrap_or("").is_empty()
        || !matches!(phase, None | Some("Pending"))
        || spec.selector.is_some()
        || spec.data_source.is_some()
    {
        return None;
    }
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or_else(|| Quantity("1Gi".into()));
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(format!("pvc-{uid}")),
            annotations: Some(BTreeMap::from([(PROVISIONED_BY.to_string(), PROVISIONER.to_string())])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), storage)])),
            access_modes: spec
                .access_modes
                .clone()
                .filter(|m| !m.is_empty())
                .or_else(|| Some(vec!["ReadWriteOnce".into()])),
            host_path: Some(HostPathVolumeSource {
                path: dir.to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            storage_class_name: spec.storage_class_name.clone(),
            volume_mode: spec.volume_mode.clone(),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: Some(uid),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

pub async fn run(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let claims: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    let stream = watcher::watcher(claims, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            event = stream.next() => event,
        };
        match event {
            None => return,
            Some(Err(e)) => warn!("claim watch error (retrying): {e}"),
            Some(Ok(Event::Apply(claim) | Event::InitApply(claim))) => provision(&ctx, &claim).await,
            Some(Ok(Event::Delete(claim))) => release(&ctx, &claim).await,
            Some(Ok(Event::Init | Event::InitDone)) => {}
        }
    }
}

async fn provision(ctx: &Ctx, claim: &PersistentVolumeClaim) {
    let ns = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let dir = claim_dir(&ctx.state_dir, &ns, &name);
    let Some(pv) = volume_for(claim, &dir.to_string_lossy()) else {
        return;
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warn!(claim = %format!("{ns}/{name}"), "cannot create {}: {e}", dir.display());
        return;
    }
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match pvs.create(&PostParams::default(), &pv).await {
        Ok(_) => info!(
            claim = %format!("{ns}/{name}"),
            dir = %dir.display(),
            "provisioned a hostPath volume"
        ),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => warn!(claim = %format!("{ns}/{name}"), "cannot provision: {e}"),
    }
}

async fn release(ctx: &Ctx, claim: &PersistentVolumeClaim) {
    let Some(uid) = claim.metadata.uid.clone() else {
        return;
    };
    let ns = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pv_name = format!("pvc-{uid}");
    let ours = matches!(
        pvs.get_opt(&pv_name).await,
        Ok(Some(pv)) if pv.metadata.annotations.as_ref()
            .and_then(|a| a.get(PROVISIONED_BY))
            .is_some_and(|p| p == PROVISIONER)
    );
    if !ours {
        return;
    }
    if let Err(e) = pvs.delete(&pv_name, &DeleteParams::default()).await {
        warn!(volume = %pv_name, "cannot delete the released volume: {e}");
    }
    // Drop the data unless a claim of the same name exists again already.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    if let Ok(None) = claims.get_opt(&name).await {
        let dir = claim_dir(&ctx.state_dir, &ns, &name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => info!(claim = %format!("{ns}/{name}"), "claim deleted: data removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!("cannot remove {}: {e}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
    };

    fn claim(phase: Option<&str>, volume_name: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("memory".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity("2Gi".into()))])),
                    ..Default::default()
                }),
                volume_name: volume_name.map(str::to_string),
                ..Default::default()
            }),
            status: phase.map(|p| PersistentVolumeClaimStatus {
                phase: Some(p.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn pending_claims_get_a_prebound_host_path_volume() {
        let pv = volume_for(&claim(Some("Pending"), None), "/state/pvc/ns/memory").unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u1"));
        let spec = pv.spec.unwrap();
        assert_eq!(spec.capacity.unwrap()["storage"], Quantity("2Gi".into()));
        assert_eq!(spec.host_path.unwrap().path, "/state/pvc/ns/memory");
        let claim_ref = spec.claim_ref.unwrap();
        assert_eq!(claim_ref.uid.as_deref(), Some("u1"));
        assert_eq!(claim_ref.name.as_deref(), Some("memory"));
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
        assert!(volume_for(&claim(None, None), "/d").is_some());
        assert!(volume_for(&claim(Some("Bound"), Some("pv")), "/d").is_none());
        assert!(volume_for(&claim(Some("Pending"), Some("pv")), "/d").is_none());
    }
}
