//! The Deployment that runs an agent (when `spec.runtime` is set): built as a pure function of
//! the Agent and its memory revision, applied only when its content hash changed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::{Error, Result};
use crate::api::agent::{AgentRuntime, MemoryStore};
use crate::api::{Agent, FIELD_MANAGER};
use crate::store::configmap::current_name;
use crate::store::{AGENT_LABEL, MEMORY_MD, MEMORY_YAML, RevisionInfo};

/// Where the agent's own memory is mounted (read-only).
pub const MEMORY_DIR: &str = "/var/lib/reverie/memory";
/// Where the agent writes its session transcripts.
pub const SESSIONS_DIR: &str = "/var/lib/reverie/sessions";
/// Where shared (team) memories are mounted, one directory per agent.
pub const SHARED_DIR: &str = "/var/lib/reverie/shared";
/// Pod-template annotation carrying the memory digest: a new revision rolls the pods.
pub const MEMORY_DIGEST_ANNOTATION: &str = "reverie.dev/memory-digest";
/// Annotation with the hash of the desired Deployment, to skip writes that change nothing.
pub const SPEC_HASH_ANNOTATION: &str = "reverie.dev/spec-hash";

/// The volume holding an agent's memory, for its own pods or another agent's (`shared`).
fn memory_volume(name: &str, agent: &Agent) -> Value {
    match &agent.spec.memory.store {
        MemoryStore::ConfigMap(_) => json!({
            "name": name,
            "configMap": {"name": current_name(&agent.name_any()), "items": [
                {"key": MEMORY_MD, "path": MEMORY_MD}, {"key": MEMORY_YAML, "path": MEMORY_YAML}
            ]}
        }),
        MemoryStore::PersistentVolumeClaim(pvc) => json!({
            "name": name,
            "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": true}
        }),
    }
}

fn memory_sub_path(agent: &Agent) -> Option<String> {
    match &agent.spec.memory.store {
        MemoryStore::PersistentVolumeClaim(pvc) => pvc.path.clone().filter(|p| !p.is_empty()),
        MemoryStore::ConfigMap(_) => None,
    }
}

fn mount(name: &str, path: &str, read_only: bool, sub_path: Option<String>) -> Value {
    let mut mount = json!({"name": name, "mountPath": path, "readOnly": read_only});
    if let Some(sub_path) = sub_path {
        mount["subPath"] = json!(sub_path);
    }
    mount
}

/// The Deployment running `agent` with `runtime`, its memory at `memory`, and `shared`
/// agents' memories mounted read-only.
pub fn desired_deployment(
    agent: &Agent,
    runtime: &AgentRuntime,
    memory: &RevisionInfo,
    shared: &[Agent],
) -> Result<Deployment> {
    let name = agent.name_any();
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "reverie-agent".to_string()),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
        ("app.kubernetes.io/managed-by".to_string(), "reverie".to_string()),
        (AGENT_LABEL.to_string(), name.clone()),
    ]);
    let mut volumes = vec![memory_volume("memory", agent), json!({"name": "tmp", "emptyDir": {}})];
    let mut mounts = vec![
        mount("memory", MEMORY_DIR, true, memory_sub_path(agent)),
        mount("tmp", "/tmp", false, None),
    ];
    let mut env = vec![
        json!({"name": "REVERIE_AGENT", "value": name}),
        json!({"name": "REVERIE_MEMORY_FILE", "value": format!("{MEMORY_DIR}/{MEMORY_MD}")}),
    ];
    if let Some(sessions) = &agent.spec.sessions {
        let mut volume = json!({"name": "sessions"});
        if let Some(pvc) = &sessions.persistent_volume_claim {
            volume["persistentVolumeClaim"] = json!({"claimName": pvc.claim_name});
        } else if let Some(nfs) = &sessions.nfs {
            volume["nfs"] = serde_json::to_value(nfs).map_err(|source| Error::Serialize {
                what: "nfs volume",
                source,
            })?;
        } else if let Some(host_path) = &sessions.host_path {
            volume["hostPath"] = serde_json::to_value(host_path).map_err(|source| Error::Serialize {
                what: "hostPath volume",
                source,
            })?;
        }
        volumes.push(volume);
        mounts.push(mount(
            "sessions",
            SESSIONS_DIR,
            false,
            sessions.path.clone().filter(|p| !p.is_empty()),
        ));
        env.push(json!({"name": "REVERIE_SESSIONS_DIR", "value": SESSIONS_DIR}));
    }
    for other in shared {
        let volume = format!("shared-{}", other.name_any());
        volumes.push(memory_volume(&volume, other));
        mounts.push(mount(
            &volume,
            &format!("{SHARED_DIR}/{}", other.name_any()),
            true,
            memory_sub_path(other),
        ));
    }
    let user_env = serde_json::to_value(&runtime.env).map_err(|source| Error::Serialize { what: "env", source })?;
    env.extend(user_env.as_array().cloned().unwrap_or_default());
    let owner = agent
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;

    let mut container = json!({
        "name": "agent",
        "image": runtime.image,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    });
    if !runtime.args.is_empty() {
        container["args"] = json!(runtime.args);
    }
    if !runtime.env_from.is_empty() {
        container["envFrom"] = serde_json::to_value(&runtime.env_from).map_err(|source| Error::Serialize {
            what: "envFrom",
            source,
        })?;
    }
    if let Some(resources) = &runtime.resources {
        container["resources"] = serde_json::to_value(resources).map_err(|source| Error::Serialize {
            what: "resources",
            source,
        })?;
    }
    let mut pod_spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes
    });
    if let Some(account) = &runtime.service_account_name {
        pod_spec["serviceAccountName"] = json!(account);
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": agent.namespace(), "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "replicas": runtime.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "reverie-agent", "app.kubernetes.io/instance": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": {MEMORY_DIGEST_ANNOTATION: memory.digest}},
                "spec": pod_spec
            }
        }
    });
    let mut deployment: Deployment = serde_json::from_value(deployment).map_err(|source| Error::Serialize {
        what: "deployment",
        source,
    })?;
    let hash = crate::naming::short_hash(&serde_json::to_string(&deployment).map_err(|source| Error::Serialize {
        what: "deployment",
        source,
    })?);
    deployment
        .annotations_mut()
        .insert(SPEC_HASH_ANNOTATION.to_string(), hash);
    Ok(deployment)
}

/// Applies `desired` unless the existing Deployment already carries its hash. Returns the
/// Deployment as it is now in the cluster.
pub async fn apply_deployment(
    api: &Api<Deployment>,
    existing: Option<Deployment>,
    desired: &Deployment,
) -> Result<Deployment> {
    let want = desired.annotations().get(SPEC_HASH_ANNOTATION);
    if let Some(existing) = existing
        && existing.annotations().get(SPEC_HASH_ANNOTATION) == want
    {
        return Ok(existing);
    }
    let name = desired
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    Ok(api
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired))
        .await?)
}

/// Whether the Deployment has rolled out every replica of its current generation.
pub fn rollout_state(deployment: &Deployment) -> (bool, String) {
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &deployment.status else {
        return (false, "the Deployment has not reported status yet".into());
    };
    if status.observed_generation < deployment.metadata.generation {
        return (
            false,
            "the Deployment controller has not observed the latest spec yet".into(),
        );
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated >= want && available >= want {
        (true, format!("{available}/{want} agent pods available"))
    } else {
        (
            false,
            format!("rolling out: {updated}/{want} updated, {available}/{want} available"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, spec: serde_json::Value) -> Agent {
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}")},
            "spec": spec
        }))
        .unwrap()
    }

    fn revision(digest: &str) -> RevisionInfo {
        RevisionInfo {
            revision: 3,
            digest: digest.into(),
            tokens: 10,
            bytes: 100,
            entries: 1,
            update: "u".into(),
            spec: "s".into(),
        }
    }

    fn deployment(digest: &str) -> Deployment {
        let support = agent(
            "support",
            json!({"model": "m", "instructions": "i",
                   "runtime": {"image": "agent:1", "args": ["run"], "replicas": 2, "env": [{"name": "MODE", "value": "prod"}]},
                   "sessions": {"persistentVolumeClaim": {"claimName": "transcripts"}, "path": "support"},
                   "memory": {"shared": [{"agentRef": {"name": "team"}}]}}),
        );
        let team = agent(
            "team",
            json!({"model": "m", "instructions": "i", "memory": {"store": {"persistentVolumeClaim": {"claimName": "team-mem", "path": "t"}}}}),
        );
        let runtime = support.spec.runtime.clone().unwrap();
        desired_deployment(&support, &runtime, &revision(digest), &[team]).unwrap()
    }

    #[test]
    fn mounts_memory_sessions_and_shared_memory() {
        let d = deployment("sha256:a");
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        let mounts: Vec<(String, Option<bool>, Option<String>)> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.mount_path.clone(), m.read_only, m.sub_path.clone()))
            .collect();
        assert!(mounts.contains(&(MEMORY_DIR.into(), Some(true), None)));
        assert!(mounts.contains(&(SESSIONS_DIR.into(), Some(false), Some("support".into()))));
        assert!(mounts.contains(&(format!("{SHARED_DIR}/team"), Some(true), Some("t".into()))));
        let volumes = pod.volumes.unwrap();
        let memory = volumes.iter().find(|v| v.name == "memory").unwrap();
        assert_eq!(memory.config_map.as_ref().unwrap().name, "support-memory");
        let shared = volumes.iter().find(|v| v.name == "shared-team").unwrap();
        assert_eq!(shared.persistent_volume_claim.as_ref().unwrap().read_only, Some(true));
        let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(env.contains(&"MODE") && env.contains(&"REVERIE_MEMORY_FILE"));
    }

    #[test]
    fn hardened_and_owned() {
        let d = deployment("sha256:a");
        assert_eq!(d.metadata.owner_references.as_ref().unwrap()[0].kind, "Agent");
        assert_eq!(d.metadata.owner_references.as_ref().unwrap()[0].controller, Some(true));
        let pod = d.spec.unwrap().template.spec.unwrap();
        let pod_security = pod.security_context.unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        let security = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");
    }

    #[test]
    fn a_new_revision_changes_the_template_and_the_hash() {
        let a = deployment("sha256:a");
        let b = deployment("sha256:b");
        let annotation = |d: &Deployment| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[MEMORY_DIGEST_ANNOTATION]
                .clone()
        };
        assert_eq!(annotation(&a), "sha256:a");
        assert_eq!(annotation(&b), "sha256:b");
        assert_ne!(
            a.annotations()[SPEC_HASH_ANNOTATION],
            b.annotations()[SPEC_HASH_ANNOTATION]
        );
        assert_eq!(
            deployment("sha256:a").annotations()[SPEC_HASH_ANNOTATION],
            a.annotations()[SPEC_HASH_ANNOTATION]
        );
    }
}
