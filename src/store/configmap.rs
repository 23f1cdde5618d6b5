//! The ConfigMap store: `<agent>-memory` holds the current revision, `<agent>-memory-r<N>` an
//! immutable snapshot of every revision N still kept for rollback.
//!
//! A commit writes the snapshot first and the current ConfigMap second, with the resource
//! version it read as a precondition. A crash between the two leaves a snapshot that the retry
//! recognises by digest; a concurrent writer makes the second write fail with a conflict
//! instead of being overwritten.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::{
    AGENT_LABEL, Committed, MEMORY_MD, MEMORY_YAML, Next, REVISION_LABEL, RevisionInfo, RevisionStore, Snapshot,
    StoreError, Update, next_snapshot,
};
use crate::api::FIELD_MANAGER;

/// The most a memory may weigh in a ConfigMap: the API server refuses objects over 1 MiB, and
/// metadata and annotations need room too.
pub const CONFIGMAP_LIMIT_BYTES: u64 = 900 * 1024;

/// An agent's memory kept in ConfigMaps of its namespace.
#[derive(Clone)]
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    agent: String,
    owner: Option<OwnerReference>,
}

/// Name of the ConfigMap holding an agent's current memory.
pub fn current_name(agent: &str) -> String {
    format!("{agent}-memory")
}

/// Name of the immutable snapshot of revision `revision`.
pub fn revision_name(agent: &str, revision: u64) -> String {
    format!("{agent}-memory-r{revision}")
}

impl ConfigMapStore {
    /// A store for `agent` in `namespace`; objects it creates are owned by `owner` (the Agent),
    /// so deleting the Agent lets the garbage collector remove them.
    pub fn new(client: Client, namespace: &str, agent: &str, owner: Option<OwnerReference>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            agent: agent.to_string(),
            owner,
        }
    }

    fn object(
        &self,
        name: String,
        snapshot: &Snapshot,
        labels: BTreeMap<String, String>,
        immutable: bool,
    ) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name),
                labels: Some(labels),
                annotations: Some(snapshot.info.annotations()),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                (MEMORY_YAML.to_string(), snapshot.yaml.clone()),
                (MEMORY_MD.to_string(), snapshot.markdown.clone()),
            ])),
            immutable: immutable.then_some(true),
            ..Default::default()
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (AGENT_LABEL.to_string(), self.agent.clone()),
            ("app.kubernetes.io/managed-by".to_string(), "reverie".to_string()),
        ])
    }

    fn recorded(configmap: &ConfigMap) -> Result<RevisionInfo, StoreError> {
        configmap
            .metadata
            .annotations
            .as_ref()
            .and_then(RevisionInfo::from_annotations)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "ConfigMap {} lacks the reverie.dev/revision and reverie.dev/digest annotations",
                    configmap.metadata.name.as_deref().unwrap_or_default()
                ))
            })
    }

    fn snapshot_of(&self, configmap: &ConfigMap) -> Result<Snapshot, StoreError> {
        let recorded = Self::recorded(configmap)?;
        let yaml = configmap
            .data
            .as_ref()
            .and_then(|d| d.get(MEMORY_YAML))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("ConfigMap {} has no {MEMORY_YAML}", current_name(&self.agent)))
            })?;
        Snapshot::parse(&self.agent, &recorded, yaml)
    }

    /// Snapshot of revision `revision`, if still kept.
    pub async fn load_revision(&self, revision: u64) -> Result<Option<Snapshot>, StoreError> {
        match self.api.get_opt(&revision_name(&self.agent, revision)).await? {
            Some(configmap) => self.snapshot_of(&configmap).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the immutable snapshot of a revision; an existing one with the same digest is a
    /// previous attempt of the same commit.
    async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let name = revision_name(&self.agent, snapshot.info.revision);
        let mut labels = self.labels();
        labels.insert(REVISION_LABEL.to_string(), snapshot.info.revision.to_string());
        match self
            .api
            .create(
                &PostParams::default(),
                &self.object(name.clone(), snapshot, labels, true),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self.api.get(&name).await?;
                let recorded = Self::recorded(&existing)?;
                if recorded.digest == snapshot.info.digest {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!(
                        "{name} already holds another revision {} (digest {})",
                        recorded.revision, recorded.digest
                    )))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes `snapshot` the current memory, on condition that the current ConfigMap is still at
    /// `resource_version` (or absent, for the first revision).
    async fn write_current(&self, snapshot: &Snapshot, resource_version: Option<String>) -> Result<(), StoreError> {
        let name = current_name(&self.agent);
        let mut configmap = self.object(name.clone(), snapshot, self.labels(), false);
        // With a resource version, server-side apply becomes a compare-and-swap.
        configmap.metadata.resource_version = resource_version;
        match self
            .api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&configmap),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(StoreError::Conflict(format!(
                "{name} changed while revision {} was being written; it will be recomputed",
                snapshot.info.revision
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes snapshots older than the newest `keep` revisions before `current`.
    async fn prune(&self, current: u64, keep: u32) -> Result<(), StoreError> {
        let oldest_kept = current.saturating_sub(u64::from(keep));
        let selector = format!("{AGENT_LABEL}={},{REVISION_LABEL}", self.agent);
        let snapshots = self.api.list_metadata(&ListParams::default().labels(&selector)).await?;
        for meta in snapshots.items {
            let revision = meta
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .and_then(|r| r.parse::<u64>().ok());
            if let (Some(revision), Some(name)) = (revision, meta.metadata.name)
                && revision < oldest_kept
            {
                match self.api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

impl RevisionStore for ConfigMapStore {
    async fn current(&self) -> Result<Option<RevisionInfo>, StoreError> {
        match self.api.get_opt(&current_name(&self.agent)).await? {
            Some(configmap) => Self::recorded(&configmap).map(Some),
            None => Ok(None),
        }
    }

    async fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        match self.api.get_opt(&current_name(&self.agent)).await? {
            Some(configmap) => self.snapshot_of(&configmap).map(Some),
            None => Ok(None),
        }
    }

    async fn commit(&self, update: &Update) -> Result<Committed, StoreError> {
        let existing = self.api.get_opt(&current_name(&self.agent)).await?;
        let current = existing.as_ref().map(|c| self.snapshot_of(c)).transpose()?;
        let snapshot = match next_snapshot(current.as_ref(), update)? {
            Next::AlreadyApplied(info) | Next::Unchanged(info) => return Ok(Committed::Done(info)),
            Next::Write(snapshot) => snapshot,
        };
        if snapshot.info.bytes > CONFIGMAP_LIMIT_BYTES {
            return Err(StoreError::TooLarge {
                bytes: snapshot.info.bytes,
                limit: CONFIGMAP_LIMIT_BYTES,
            });
        }
        self.write_snapshot(&snapshot).await?;
        let resource_version = existing.and_then(|c| c.metadata.resource_version);
        self.write_current(&snapshot, resource_version).await?;
        self.prune(snapshot.info.revision, update.history_limit).await?;
        Ok(Committed::Done(snapshot.info.clone()))
    }
}
