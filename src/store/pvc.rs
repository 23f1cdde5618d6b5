//! The PVC store as the operator sees it: it cannot mount the claim, so it commits through a
//! short Job running `reverie memory apply` with the claim mounted, and reads the current
//! revision from the annotations that Job leaves on ConfigMap `<agent>-memory` (which holds no
//! memory content in this mode).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::{Api, Client, Resource};
use serde_json::json;

use super::configmap::current_name;
use super::{AGENT_LABEL, Committed, RevisionInfo, RevisionStore, Snapshot, StoreError, Update};
use crate::kube_ext::{create_unless_exists, job_failure, job_pod_message};
use crate::naming::bounded_name;

/// Where the apply Job mounts the claim (where a dream Job mounts it too), and its container's
/// termination log, which carries the revision its update produced, as JSON.
pub use crate::api::dream_job::{MEMORY_MOUNT, RESULT_FILE};
/// Where the apply Job finds the update to apply.
pub const UPDATE_MOUNT: &str = "/var/run/reverie/update";
/// Key of the update inside the request ConfigMap.
pub const UPDATE_KEY: &str = "update.yaml";

/// An agent's memory inside a PersistentVolumeClaim, committed through apply Jobs.
#[derive(Clone)]
pub struct PvcStore {
    client: Client,
    namespace: String,
    agent: String,
    claim: String,
    path: Option<String>,
    owner: Option<OwnerReference>,
    job: ApplyJobSettings,
}

/// The ServiceAccount the apply Job runs as: it may only update the agent's index ConfigMap.
pub fn writer_name(agent: &str) -> String {
    bounded_name(&[agent, "memory-writer"])
}

/// How apply Jobs run: the image, and how long a finished one is kept for inspection before
/// Kubernetes' TTL-after-finished controller deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyJobSettings {
    pub image: String,
    pub ttl_seconds_after_finished: i32,
}

/// A finished apply Job is kept a day unless the operator is told otherwise.
pub const DEFAULT_APPLY_JOB_TTL_SECONDS: i32 = 86_400;

/// What a failed apply Job writes to its termination log, so the operator tells a conflict (the
/// proposal no longer fits the memory) from any other failure without parsing prose. A
/// successful Job writes the [`RevisionInfo`] of the revision its update is in instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyFailure {
    pub message: String,
    /// The proposal's changes that no longer fit (empty for other failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
}

impl ApplyFailure {
    /// The report of `error`.
    pub fn of(error: &StoreError) -> Self {
        Self {
            message: error.to_string(),
            conflicts: match error {
                StoreError::Conflicted(conflicts) => conflicts.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// Reads a report back from a termination message; `None` when it is not one.
    pub fn parse(message: &str) -> Option<Self> {
        serde_json::from_str(message.trim()).ok()
    }
}

impl PvcStore {
    pub fn new(
        client: Client,
        namespace: &str,
        agent: &str,
        claim: &str,
        path: Option<String>,
        owner: Option<OwnerReference>,
        job: ApplyJobSettings,
    ) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            agent: agent.to_string(),
            claim: claim.to_string(),
            path: path.filter(|p| !p.is_empty()),
            owner,
            job,
        }
    }

    fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(BTreeMap::from([
                (AGENT_LABEL.to_string(), self.agent.clone()),
                ("app.kubernetes.io/managed-by".to_string(), "reverie".to_string()),
            ])),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..Default::default()
        }
    }

    /// Creates `object` unless it exists (these objects never change once created).
    async fn ensure<K>(&self, object: &K) -> Result<(), StoreError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(create_unless_exists(&api, object).await?)
    }

    /// The least-privilege identity of the apply Job, and the index ConfigMap it reports to.
    async fn ensure_writer(&self) -> Result<(), StoreError> {
        let name = writer_name(&self.agent);
        let index = current_name(&self.agent);
        self.ensure(&ConfigMap {
            metadata: self.meta(index.clone()),
            ..Default::default()
        })
        .await?;
        self.ensure(&ServiceAccount {
            metadata: self.meta(name.clone()),
            automount_service_account_token: Some(true),
            ..Default::default()
        })
        .await?;
        let role: Role = serde_json::from_value(json!({
            "metadata": self.meta(name.clone()),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [index], "verbs": ["get", "patch"]}]
        }))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.ensure(&role).await?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": self.meta(name.clone()),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}]
        }))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.ensure(&binding).await
    }

    /// The apply Job for `update` and the ConfigMap carrying the update.
    pub fn apply_job(&self, update: &Update, request: &str) -> Result<Job, StoreError> {
        let job_name = request.to_string();
        let mut mount = json!({"name": "memory", "mountPath": MEMORY_MOUNT});
        if let Some(path) = &self.path {
            mount["subPath"] = json!(path);
        }
        serde_json::from_value(json!({
            "metadata": self.meta(job_name),
            "spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": self.job.ttl_seconds_after_finished,
                "template": {
                    "metadata": {"labels": {AGENT_LABEL: self.agent, "reverie.dev/role": "memory-apply"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": writer_name(&self.agent),
                        "securityContext": {
                            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}
                        },
                        "containers": [{
                            "name": "apply",
                            "image": self.job.image,
                            "command": ["reverie", "memory", "apply",
                                        "--dir", MEMORY_MOUNT,
                                        "--update", format!("{UPDATE_MOUNT}/{UPDATE_KEY}"),
                                        "--report-configmap", current_name(&self.agent),
                                        "--result-file", RESULT_FILE],
                            "terminationMessagePath": RESULT_FILE,
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                            "securityContext": {
                                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}
                            },
                            "volumeMounts": [mount, {"name": "update", "mountPath": UPDATE_MOUNT, "readOnly": true}]
                        }],
                        "volumes": [
                            {"name": "memory", "persistentVolumeClaim": {"claimName": self.claim}},
                            {"name": "update", "configMap": {"name": request}}
                        ]
                    }
                }
            }
        }))
        .map_err(|e| StoreError::Corrupt(format!("building the apply Job for {}: {e}", update.id)))
    }

    /// The name shared by the request ConfigMap and the apply Job of an update: deterministic,
    /// so a second commit of the same update finds the first one's Job.
    pub fn request_name(&self, update: &Update) -> String {
        let revision = format!("r{}", update.base_revision + 1);
        let digest = crate::naming::short_hash(&update.id);
        bounded_name(&[&self.agent, "memory-apply", &revision, &digest])
    }
}

impl PvcStore {
    /// The termination message of the apply Job's newest pod.
    async fn pod_message(&self, job: &str) -> Result<Option<String>, StoreError> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(job_pod_message(&pods, job, None).await?)
    }
}

impl RevisionStore for PvcStore {
    async fn current(&self) -> Result<Option<RevisionInfo>, StoreError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(api
            .get_opt(&current_name(&self.agent))
            .await?
            .and_then(|c| c.metadata.annotations)
            .and_then(|a| RevisionInfo::from_annotations(&a)))
    }

    async fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "the memory of {} lives in PersistentVolumeClaim {}: read it where the claim is mounted",
            self.agent, self.claim
        )))
    }

    async fn commit(&self, update: &Update) -> Result<Committed, StoreError> {
        let current = self.current().await?;
        if let Some(info) = &current
            && info.update == update.id
        {
            return Ok(Committed::Done(info.clone()));
        }
        let current_revision = current.as_ref().map_or(0, |c| c.revision);
        if current_revision != update.base_revision {
            return Err(StoreError::Conflict(format!(
                "update {} was computed on revision {} but the memory is at revision {current_revision}",
                update.id, update.base_revision
            )));
        }
        self.ensure_writer().await?;
        let request = self.request_name(update);
        let yaml = serde_yaml::to_string(update).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.ensure(&ConfigMap {
            metadata: self.meta(request.clone()),
            data: Some(BTreeMap::from([(UPDATE_KEY.to_string(), yaml)])),
            immutable: Some(true),
            ..Default::default()
        })
        .await?;
        self.ensure(&self.apply_job(update, &request)?).await?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(job) = jobs.get_opt(&request).await? else {
            return Ok(Committed::InProgress { job: request });
        };
        if let Some(failure) = job_failure(&job) {
            let message = self.pod_message(&request).await?;
            return Err(match message.as_deref().and_then(ApplyFailure::parse) {
                Some(report) if !report.conflicts.is_empty() => StoreError::Conflicted(report.conflicts),
                Some(report) => StoreError::Rejected(format!("apply Job {request} failed: {}", report.message)),
                // No report: the pod died before writing one (its log tail, or the Job's reason).
                None => StoreError::Rejected(format!("apply Job {request} failed: {}", message.unwrap_or(failure))),
            });
        }
        // A finished Job reports the revision its update is in, even when another revision
        // has been written on top since (the index then shows that newer one).
        if job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0
            && let Some(info) = self
                .pod_message(&request)
                .await?
                .and_then(|m| serde_json::from_str::<RevisionInfo>(m.trim()).ok())
            && info.update == update.id
        {
            return Ok(Committed::Done(info));
        }
        Ok(Committed::InProgress { job: request })
    }
}
