//! The Deployment that runs an agent (when `spec.runtime` is set): built as a pure function of
//! the Agent and its memory revision, applied only when its content hash changed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, ConfigMapVolumeSource, Container, DownwardAPIProjection, DownwardAPIVolumeFile,
    EmptyDirVolumeSource, EnvVar, KeyToPath, ObjectFieldSelector, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource, SeccompProfile, SecurityContext, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use crate::api::agent::{AgentRuntime, CollectorSpec, MemoryStore, SessionsSpec};
use crate::api::{Agent, FIELD_MANAGER};
use crate::controller::{Context, Error, Result};
use crate::dream::sessions::import::MEMORY_REVISION_ATTRIBUTE;
use crate::store::configmap::current_name;
use crate::store::{AGENT_LABEL, MEMORY_MD, MEMORY_YAML, REVISION_FILE, RevisionInfo};

/// Where the agent's own memory is mounted (read-only).
pub const MEMORY_DIR: &str = "/var/lib/reverie/memory";
/// Where the agent writes its session transcripts.
pub const SESSIONS_DIR: &str = "/var/lib/reverie/sessions";
/// Where shared (team) memories are mounted, one directory per agent.
pub const SHARED_DIR: &str = "/var/lib/reverie/shared";
/// Pod-template annotation carrying the memory digest: a new revision rolls the pods.
pub const MEMORY_DIGEST_ANNOTATION: &str = "reverie.dev/memory-digest";
/// Pod-template annotation carrying the memory revision, projected as the file `REVISION`.
pub const MEMORY_REVISION_ANNOTATION: &str = "reverie.dev/memory-revision";
/// Annotation with the hash of the desired Deployment, to skip writes that change nothing.
pub const SPEC_HASH_ANNOTATION: &str = "reverie.dev/spec-hash";

/// The agent's own memory: a ConfigMap store is projected together with the pod's revision
/// annotation as the file `REVISION` (a PVC store writes that file itself), so it works for
/// memories written before the file existed.
fn own_memory_volume(agent: &Agent) -> Volume {
    let mut volume = memory_volume("memory", agent);
    if let Some(config_map) = volume.config_map.take() {
        volume.projected = Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: config_map.name,
                        items: config_map.items,
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: REVISION_FILE.to_string(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: format!("metadata.annotations['{MEMORY_REVISION_ANNOTATION}']"),
                                api_version: None,
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
            default_mode: None,
        });
    }
    volume
}

/// The volume holding an agent's memory, for its own pods or another agent's (`shared`).
fn memory_volume(name: &str, agent: &Agent) -> Volume {
    let volume = Volume {
        name: name.to_string(),
        ..Volume::default()
    };
    match &agent.spec.memory.store {
        MemoryStore::ConfigMap(_) => Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: current_name(&agent.name_any()),
                items: Some(vec![same_path(MEMORY_MD), same_path(MEMORY_YAML)]),
                ..ConfigMapVolumeSource::default()
            }),
            ..volume
        },
        MemoryStore::PersistentVolumeClaim(pvc) => Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc.claim_name.clone(),
                read_only: Some(true),
            }),
            ..volume
        },
    }
}

/// A ConfigMap key projected as the file of the same name.
fn same_path(key: &str) -> KeyToPath {
    KeyToPath {
        key: key.to_string(),
        path: key.to_string(),
        ..KeyToPath::default()
    }
}

fn memory_sub_path(agent: &Agent) -> Option<String> {
    match &agent.spec.memory.store {
        MemoryStore::PersistentVolumeClaim(pvc) => pvc.path.clone().filter(|p| !p.is_empty()),
        MemoryStore::ConfigMap(_) => None,
    }
}

fn mount(name: &str, path: &str, read_only: bool, sub_path: Option<String>) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only),
        sub_path,
        ..VolumeMount::default()
    }
}

/// The volume the agent writes its transcripts to, from whichever source its spec sets.
fn sessions_volume(sessions: &SessionsSpec) -> Volume {
    let mut volume = Volume {
        name: "sessions".to_string(),
        ..Volume::default()
    };
    if let Some(pvc) = &sessions.persistent_volume_claim {
        // The claim alone: the agent writes its transcripts there, so a `readOnly` in the
        // spec is not carried over.
        volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: pvc.claim_name.clone(),
            ..PersistentVolumeClaimVolumeSource::default()
        });
    } else if let Some(nfs) = &sessions.nfs {
        volume.nfs = Some(nfs.clone());
    } else if let Some(host_path) = &sessions.host_path {
        volume.host_path = Some(host_path.clone());
    }
    volume
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

/// What the agent container sees: its volumes, their mounts, and the environment that tells
/// the runtime where they are.
struct AgentFiles {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    env: Vec<EnvVar>,
}

/// The agent's memory (read-only), a writable /tmp (the root file system is read-only), its
/// sessions directory, and each `shared` agent's memory (read-only).
fn agent_files(agent: &Agent, memory: &RevisionInfo, shared: &[Agent]) -> AgentFiles {
    let name = agent.name_any();
    let mut files = AgentFiles {
        volumes: vec![
            own_memory_volume(agent),
            Volume {
                name: "tmp".to_string(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ],
        mounts: vec![
            mount("memory", MEMORY_DIR, true, memory_sub_path(agent)),
            mount("tmp", "/tmp", false, None),
        ],
        env: vec![
            env_var("REVERIE_AGENT", &name),
            env_var("REVERIE_MEMORY_FILE", &format!("{MEMORY_DIR}/{MEMORY_MD}")),
            env_var("REVERIE_MEMORY_REVISION", &memory.revision.to_string()),
            env_var("REVERIE_MEMORY_REVISION_FILE", &format!("{MEMORY_DIR}/{REVISION_FILE}")),
        ],
    };
    if let Some(sessions) = &agent.spec.sessions {
        files.volumes.push(sessions_volume(sessions));
        files.mounts.push(mount(
            "sessions",
            SESSIONS_DIR,
            false,
            sessions.path.clone().filter(|p| !p.is_empty()),
        ));
        files.env.push(env_var("REVERIE_SESSIONS_DIR", SESSIONS_DIR));
        if let Some(collector) = &sessions.collector {
            files.env.extend(telemetry_env(agent, collector, memory));
        }
    }
    for other in shared {
        let volume = format!("shared-{}", other.name_any());
        files.volumes.push(memory_volume(&volume, other));
        files.mounts.push(mount(
            &volume,
            &format!("{SHARED_DIR}/{}", other.name_any()),
            true,
            memory_sub_path(other),
        ));
    }
    files
}

/// The standard OpenTelemetry SDK variables that send the agent's spans to reverie's
/// collector. The service name is the Agent's: it is how the collector knows whose sessions
/// they are. The runtime's own `env` comes after and may override any of them.
fn telemetry_env(agent: &Agent, collector: &CollectorSpec, memory: &RevisionInfo) -> Vec<EnvVar> {
    let namespace = agent.namespace().unwrap_or_default();
    vec![
        env_var("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint_in(&namespace)),
        env_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        env_var("OTEL_SERVICE_NAME", &agent.name_any()),
        // Every span then names the memory revision the agent ran with: the sessions the
        // collector writes attribute lesson effects exactly.
        env_var(
            "OTEL_RESOURCE_ATTRIBUTES",
            &format!("{MEMORY_REVISION_ATTRIBUTE}={}", memory.revision),
        ),
    ]
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        ..SeccompProfile::default()
    }
}

/// The agent container: the runtime's image, args and env (after reverie's `env`, replacing a
/// variable of the same name: a Pod's env is keyed by name), hardened.
fn agent_container(runtime: &AgentRuntime, mut env: Vec<EnvVar>, mounts: Vec<VolumeMount>) -> Container {
    env.retain(|ours| !runtime.env.iter().any(|theirs| theirs.name == ours.name));
    env.extend(runtime.env.iter().cloned());
    Container {
        name: "agent".to_string(),
        image: Some(runtime.image.clone()),
        args: Some(runtime.args.clone()).filter(|args| !args.is_empty()),
        env: Some(env),
        env_from: Some(runtime.env_from.clone()).filter(|env_from| !env_from.is_empty()),
        resources: runtime.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The labels that select an agent's pods: a subset of [`pod_labels`], which must not change
/// over the Deployment's life (a Deployment's selector is immutable).
fn selector_labels(agent: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "reverie-agent".to_string()),
        ("app.kubernetes.io/instance".to_string(), agent.to_string()),
    ])
}

/// The labels of the Deployment and its pods.
fn pod_labels(agent: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(agent);
    labels.extend([
        ("app.kubernetes.io/managed-by".to_string(), "reverie".to_string()),
        (AGENT_LABEL.to_string(), agent.to_string()),
    ]);
    labels
}

/// The Deployment running `agent` with `runtime`, its memory at `memory`, and `shared`
/// agents' memories mounted read-only. Fails when the Agent has no uid to own it by.
pub fn desired_deployment(
    agent: &Agent,
    runtime: &AgentRuntime,
    memory: &RevisionInfo,
    shared: &[Agent],
) -> Result<Deployment> {
    let owner = agent
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let name = agent.name_any();
    let labels = pod_labels(&name);
    let AgentFiles { volumes, mounts, env } = agent_files(agent, memory, shared);
    let pod_spec = PodSpec {
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        containers: vec![agent_container(runtime, env, mounts)],
        volumes: Some(volumes),
        service_account_name: runtime.service_account_name.clone(),
        ..PodSpec::default()
    };
    let mut deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: agent.namespace(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(runtime.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([
                        (MEMORY_DIGEST_ANNOTATION.to_string(), memory.digest.clone()),
                        (MEMORY_REVISION_ANNOTATION.to_string(), memory.revision.to_string()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let hash = content_hash(&deployment)?;
    deployment
        .annotations_mut()
        .insert(SPEC_HASH_ANNOTATION.to_string(), hash);
    Ok(deployment)
}

/// A short hash of the whole desired Deployment (before the hash annotation is added), so
/// [`apply_deployment`] can skip a write that would change nothing. Anything that changes the
/// serialized Deployment, even an empty list where none was, makes the next operator re-apply
/// every agent's Deployment once.
fn content_hash(deployment: &Deployment) -> Result<String> {
    let json = serde_json::to_string(deployment).map_err(|source| Error::Serialize {
        what: "deployment",
        source,
    })?;
    Ok(crate::naming::short_hash(&json))
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
/// Applies the agent's Deployment and reports whether it has rolled out.
pub async fn ensure(
    ctx: &Context,
    agent: &Agent,
    runtime: &AgentRuntime,
    memory: &RevisionInfo,
    shared: &[Agent],
) -> Result<(bool, String)> {
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &agent.namespace().unwrap_or_default());
    let desired = desired_deployment(agent, runtime, memory, shared)?;
    let existing = deployments.get_opt(&agent.name_any()).await?;
    let current = apply_deployment(&deployments, existing, &desired).await?;
    Ok(rollout_state(&current))
}

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
    use serde_json::json;

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
        let sources = memory.projected.as_ref().unwrap().sources.as_ref().unwrap();
        assert_eq!(sources[0].config_map.as_ref().unwrap().name, "support-memory");
        let shared = volumes.iter().find(|v| v.name == "shared-team").unwrap();
        assert_eq!(shared.persistent_volume_claim.as_ref().unwrap().read_only, Some(true));
        let sessions = volumes.iter().find(|v| v.name == "sessions").unwrap();
        let claim = sessions.persistent_volume_claim.as_ref().unwrap();
        assert_eq!((claim.claim_name.as_str(), claim.read_only), ("transcripts", None));
        let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(env.contains(&"MODE") && env.contains(&"REVERIE_MEMORY_FILE"));
    }

    #[test]
    fn an_agent_that_asks_for_the_collector_exports_to_it_under_its_own_name() {
        let spec = |collector: serde_json::Value, env: serde_json::Value| {
            json!({"model": "m", "instructions": "i",
                   "runtime": {"image": "agent:1", "env": env},
                   "sessions": {"persistentVolumeClaim": {"claimName": "transcripts"}, "collector": collector}})
        };
        let env_of = |agent: Agent| -> Vec<(String, Option<String>)> {
            let runtime = agent.spec.runtime.clone().unwrap();
            let d = desired_deployment(&agent, &runtime, &revision("sha256:a"), &[]).unwrap();
            let pod = d.spec.unwrap().template.spec.unwrap();
            pod.containers[0]
                .env
                .iter()
                .flatten()
                .filter(|e| e.name.starts_with("OTEL_"))
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect()
        };
        let defaults = env_of(agent("support", spec(json!({}), json!([]))));
        assert_eq!(
            defaults,
            [
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    Some("http://reverie-collector.team.svc:4318".into())
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), Some("http/protobuf".into())),
                ("OTEL_SERVICE_NAME".into(), Some("support".into())),
                (
                    "OTEL_RESOURCE_ATTRIBUTES".into(),
                    Some("reverie.memory.revision=3".into())
                ),
            ]
        );
        // The runtime's own variable wins, and appears once (a Pod's env is keyed by name).
        let overridden = env_of(agent(
            "support",
            spec(
                json!({"endpoint": "http://otel.observability:4318"}),
                json!([{"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/json"}]),
            ),
        ));
        assert_eq!(
            overridden,
            [
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    Some("http://otel.observability:4318".into())
                ),
                ("OTEL_SERVICE_NAME".into(), Some("support".into())),
                (
                    "OTEL_RESOURCE_ATTRIBUTES".into(),
                    Some("reverie.memory.revision=3".into())
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), Some("http/json".into())),
            ]
        );
        // Without `collector`, no telemetry variable is set.
        let mut quiet = agent("support", spec(json!({}), json!([])));
        quiet.spec.sessions.as_mut().unwrap().collector = None;
        assert!(env_of(quiet).is_empty());
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

    fn built(agent: &Agent) -> Result<Deployment> {
        let runtime = agent.spec.runtime.clone().unwrap();
        desired_deployment(agent, &runtime, &revision("sha256:a"), &[])
    }

    #[test]
    fn an_agent_without_a_uid_gets_an_error_not_an_ownerless_deployment() {
        let mut minimal = agent(
            "minimal",
            json!({"model": "m", "instructions": "i", "runtime": {"image": "agent:1"}}),
        );
        minimal.metadata.uid = None;
        let error = built(&minimal).unwrap_err();
        assert!(matches!(error, Error::MissingObjectKey("metadata.uid")), "{error}");
    }

    #[test]
    fn a_minimal_runtime_gets_labels_a_selector_a_scratch_dir_and_nothing_unset() {
        let minimal = agent(
            "minimal",
            json!({"model": "m", "instructions": "i", "runtime": {"image": "agent:1"}}),
        );
        let d = built(&minimal).unwrap();
        assert_eq!(d.metadata.namespace.as_deref(), Some("team"));
        let labels = d.metadata.labels.clone().unwrap();
        assert_eq!(labels[AGENT_LABEL], "minimal");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "reverie");
        let spec = d.spec.unwrap();
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(selector.len(), 2);
        assert!(selector.iter().all(|(key, value)| labels.get(key) == Some(value)));
        let template = spec.template.metadata.unwrap();
        assert_eq!(template.labels, Some(labels));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name, None);
        let c = &pod.containers[0];
        assert_eq!(
            (c.args.as_ref(), c.env_from.as_ref(), c.resources.as_ref()),
            (None, None, None)
        );
        // The memory files, and next to them the revision the pod runs with, from its own
        // annotation (which also rolls the pods when it changes).
        let projected = pod.volumes.as_ref().unwrap()[0].projected.clone().unwrap();
        let sources = projected.sources.unwrap();
        let memory = sources[0].config_map.clone().unwrap();
        let items: Vec<(String, String)> = memory.items.unwrap().into_iter().map(|i| (i.key, i.path)).collect();
        assert_eq!(
            items,
            [
                (MEMORY_MD.into(), MEMORY_MD.into()),
                (MEMORY_YAML.into(), MEMORY_YAML.into())
            ]
        );
        let revision_file = &sources[1].downward_api.as_ref().unwrap().items.as_ref().unwrap()[0];
        assert_eq!(revision_file.path, REVISION_FILE);
        assert_eq!(
            revision_file.field_ref.as_ref().unwrap().field_path,
            "metadata.annotations['reverie.dev/memory-revision']"
        );
        let annotations = template.annotations.unwrap();
        assert_eq!(annotations[MEMORY_REVISION_ANNOTATION], "3");
        assert!(
            pod.volumes
                .unwrap()
                .iter()
                .any(|v| v.name == "tmp" && v.empty_dir.is_some())
        );
        let tmp = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/tmp")
            .unwrap();
        assert_eq!(tmp.read_only, Some(false));
        let env: Vec<(&str, Option<&str>)> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            env,
            [
                ("REVERIE_AGENT", Some("minimal")),
                ("REVERIE_MEMORY_FILE", Some("/var/lib/reverie/memory/MEMORY.md")),
                ("REVERIE_MEMORY_REVISION", Some("3")),
                ("REVERIE_MEMORY_REVISION_FILE", Some("/var/lib/reverie/memory/REVISION")),
            ]
        );
    }

    #[test]
    fn the_sessions_volume_keeps_its_source_writable_and_runtime_settings_pass_through() {
        let nfs = agent(
            "nfs",
            json!({"model": "m", "instructions": "i",
                   "runtime": {"image": "agent:2", "serviceAccountName": "sa", "envFrom": [{"configMapRef": {"name": "cfg"}}],
                               "resources": {"limits": {"cpu": "1"}}},
                   "sessions": {"nfs": {"server": "nfs.local", "path": "/exp", "readOnly": false}, "path": "/sub/"}}),
        );
        let host = agent(
            "host",
            json!({"model": "m", "instructions": "i", "runtime": {"image": "agent:3"},
                   "sessions": {"hostPath": {"path": "/h", "type": "DirectoryOrCreate"}}}),
        );
        let pod = built(&nfs).unwrap().spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("sa"));
        let sessions = pod.volumes.iter().flatten().find(|v| v.name == "sessions").unwrap();
        assert_eq!(sessions.nfs, nfs.spec.sessions.as_ref().unwrap().nfs);
        let c = &pod.containers[0];
        assert_eq!(
            c.env_from.as_ref().unwrap()[0].config_map_ref.as_ref().unwrap().name,
            "cfg"
        );
        assert_eq!(c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"].0, "1");
        let mount = c.volume_mounts.iter().flatten().find(|m| m.name == "sessions").unwrap();
        assert_eq!(
            (mount.read_only, mount.sub_path.as_deref()),
            (Some(false), Some("/sub/"))
        );
        assert!(c.env.iter().flatten().any(|e| e.name == "REVERIE_SESSIONS_DIR"));
        let pod = built(&host).unwrap().spec.unwrap().template.spec.unwrap();
        let sessions = pod.volumes.iter().flatten().find(|v| v.name == "sessions").unwrap();
        assert_eq!(sessions.host_path, host.spec.sessions.as_ref().unwrap().host_path);
    }
}
