//! The dream Job of one pass: its name, the pod that runs `reverie dream` in-cluster, and how
//! to read a finished Job's outcome. Pure: building and reading objects, no API calls.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use crate::api::agent::{MemoryStore, SessionsSpec};
use crate::api::dream_job::{
    API_KEY_ENV, CONTAINER, DREAM_AGENT_LABEL, DREAMER_SERVICE_ACCOUNT, MEMORY_MOUNT, RESULT_FILE, SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION, SESSIONS_MOUNT,
};
use crate::api::dream_schedule::{DreamScheduleSpec, Output, ReflectorProvider};
use crate::api::{Agent, DreamSchedule, rules};
use crate::naming::{bounded_name, short_hash};

/// Defaults when the schedule's `jobTemplate` sets none: one retry, one hour.
const DEFAULT_BACKOFF_LIMIT: i32 = 1;
const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 3600;

/// Why a pass starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule fired at this instant.
    Scheduled(Timestamp),
    /// `reverie.dev/dream-now` was set to this value.
    Now(String),
}

impl Trigger {
    /// The Job name for this trigger and agent: deterministic, so creating it twice is
    /// `AlreadyExists`, never a second pass.
    pub fn job_name(&self, schedule: &str, agent: &str) -> String {
        match self {
            Trigger::Scheduled(at) => bounded_name(&[schedule, agent, &(at.as_second() / 60).to_string()]),
            Trigger::Now(value) => bounded_name(&[schedule, agent, "now", &short_hash(value)]),
        }
    }

    fn annotation(&self) -> String {
        match self {
            Trigger::Scheduled(at) => at.to_string(),
            Trigger::Now(value) => format!("dream-now={value}"),
        }
    }
}

/// One pass to start: the agent receiving the proposal, and the agents whose sessions it reads
/// (itself, or every selected agent in a collective pass).
pub struct PassPlan<'a> {
    pub target: &'a Agent,
    pub pool: &'a [&'a Agent],
    pub min_agents: u32,
}

/// The dream Job for `plan`, owned by the schedule.
pub fn build(schedule: &DreamSchedule, plan: &PassPlan<'_>, trigger: &Trigger, image: &str) -> Job {
    let name = schedule.metadata.name.clone().unwrap_or_default();
    let namespace = schedule.metadata.namespace.clone().unwrap_or_default();
    let agent = plan.target.metadata.name.clone().unwrap_or_default();
    let job_name = trigger.job_name(&name, &agent);
    let spec = &schedule.spec;
    let template = spec.job_template.clone().unwrap_or_default();
    let labels = json!({
        SCHEDULE_LABEL: name,
        DREAM_AGENT_LABEL: agent,
        "app.kubernetes.io/managed-by": "reverie",
        "app.kubernetes.io/component": "dream",
    });
    let (mut volumes, mut mounts, sessions_args) = volumes(plan);
    let mut args = vec![
        "reverie".to_string(),
        "dream".into(),
        "--agent".into(),
        format!("{namespace}/{agent}"),
        "--schedule".into(),
        name.clone(),
        "--job".into(),
        job_name.clone(),
        "--result-file".into(),
        RESULT_FILE.into(),
    ];
    args.extend(sessions_args);
    args.extend(pass_args(spec, plan.min_agents));
    if matches!(plan.target.spec.memory.store, MemoryStore::PersistentVolumeClaim(_)) {
        args.extend(["--memory-dir".to_string(), MEMORY_MOUNT.to_string()]);
    }
    let mut env: Vec<Value> = spec
        .reflector
        .api_key_secret_ref
        .as_ref()
        .filter(|_| spec.reflector.provider != ReflectorProvider::Builtin)
        .map(|secret| {
            vec![json!({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}})]
        })
        .unwrap_or_default();
    // Git output: the `--git-…` flags, the Secret's token as env and SSH key as files, a writable /tmp.
    if let Output::Git(git) = &spec.output {
        let git = crate::gitops::job::pod_settings(git);
        args.extend(git.args);
        env.extend(git.env);
        volumes.extend(git.volumes);
        mounts.extend(git.mounts);
    }
    let owner = OwnerReference {
        api_version: "reverie.dev/v1alpha1".into(),
        kind: "DreamSchedule".into(),
        name: name.clone(),
        uid: schedule.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {SCHEDULED_AT_ANNOTATION: trigger.annotation()},
            "ownerReferences": [owner],
        },
        "spec": {
            "backoffLimit": template.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT),
            "activeDeadlineSeconds": template.active_deadline_seconds.unwrap_or(DEFAULT_ACTIVE_DEADLINE_SECONDS),
            "ttlSecondsAfterFinished": template.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": template.service_account_name.clone().unwrap_or_else(|| DREAMER_SERVICE_ACCOUNT.into()),
                    "automountServiceAccountToken": true,
                    "nodeSelector": template.node_selector,
                    "tolerations": template.tolerations,
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "containers": [{
                        "name": CONTAINER,
                        "image": template.image.clone().unwrap_or_else(|| image.to_string()),
                        "command": args,
                        "env": env,
                        "resources": template.resources.clone().unwrap_or_default(),
                        "terminationMessagePath": RESULT_FILE,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": {
                            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                }
            }
        }
    });
    // Every field above has the type Job expects; a failure here is a bug caught by the tests.
    serde_json::from_value(job).expect("the dream Job template is a valid Job")
}

/// The sessions volumes (read-only) and, for a PVC store, the memory volume; and the
/// `--sessions` arguments that point the pass at them.
fn volumes(plan: &PassPlan<'_>) -> (Vec<Value>, Vec<Value>, Vec<String>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut args = Vec::new();
    let collective = plan.pool.len() > 1 || plan.min_agents > 1;
    for (index, agent) in plan.pool.iter().enumerate() {
        let Some(sessions) = &agent.spec.sessions else { continue };
        let agent_name = agent.metadata.name.clone().unwrap_or_default();
        let volume = format!("sessions-{index}");
        let path = if collective {
            format!("{SESSIONS_MOUNT}/{agent_name}")
        } else {
            SESSIONS_MOUNT.to_string()
        };
        volumes.push(sessions_volume(&volume, sessions));
        let mut mount = json!({"name": volume, "mountPath": path, "readOnly": true});
        if let Some(sub) = sessions.path.as_deref().filter(|p| !p.is_empty()) {
            mount["subPath"] = json!(sub.trim_matches('/'));
        }
        mounts.push(mount);
        args.push("--sessions".to_string());
        args.push(if collective {
            format!("{agent_name}={path}")
        } else {
            path
        });
    }
    if let MemoryStore::PersistentVolumeClaim(pvc) = &plan.target.spec.memory.store {
        volumes
            .push(json!({"name": "memory", "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": true}}));
        let mut mount = json!({"name": "memory", "mountPath": MEMORY_MOUNT, "readOnly": true});
        if let Some(sub) = pvc.path.as_deref().filter(|p| !p.is_empty()) {
            mount["subPath"] = json!(sub.trim_matches('/'));
        }
        mounts.push(mount);
    }
    (volumes, mounts, args)
}

fn sessions_volume(name: &str, sessions: &SessionsSpec) -> Value {
    let mut volume = json!({"name": name});
    if let Some(pvc) = &sessions.persistent_volume_claim {
        volume["persistentVolumeClaim"] = json!({"claimName": pvc.claim_name, "readOnly": true});
    } else if let Some(nfs) = &sessions.nfs {
        volume["nfs"] = json!({"server": nfs.server, "path": nfs.path, "readOnly": true});
    } else if let Some(host_path) = &sessions.host_path {
        volume["hostPath"] = json!({"path": host_path.path, "type": "Directory"});
    }
    volume
}

/// The pass settings from the schedule, as `reverie dream` arguments.
fn pass_args(spec: &DreamScheduleSpec, min_agents: u32) -> Vec<String> {
    let mut args = vec![
        "--lookback".to_string(),
        spec.lookback.sessions.to_string(),
        "--min-evidence".into(),
        spec.curation.min_evidence.to_string(),
        "--stale-after".into(),
        spec.curation.stale_after.clone(),
        "--max-changes".into(),
        spec.max_changes.to_string(),
        "--strata-labels".into(),
        spec.curation.strata_labels.join(","),
    ];
    if min_agents > 1 {
        args.extend(["--min-agents".into(), min_agents.to_string()]);
    }
    if let Some(max_age) = &spec.lookback.max_age {
        args.extend(["--max-age".into(), max_age.clone()]);
    }
    if let Some(selector) = &spec.lookback.label_selector {
        for label in rules::dream_schedule::session_labels(selector).unwrap_or_default() {
            args.extend(["--label".into(), label]);
        }
    }
    let reflector = &spec.reflector;
    let provider = match reflector.provider {
        ReflectorProvider::Builtin => "builtin",
        ReflectorProvider::Anthropic => "anthropic",
        ReflectorProvider::OpenAi => "openai",
    };
    args.extend(["--reflector".into(), provider.into()]);
    if reflector.provider != ReflectorProvider::Builtin {
        let optional = [
            ("--model", reflector.model.clone()),
            ("--endpoint", reflector.endpoint.clone()),
            ("--instructions", reflector.instructions.clone()),
            ("--max-input-tokens", reflector.max_input_tokens.map(|t| t.to_string())),
            (
                "--max-output-tokens",
                reflector.max_output_tokens.map(|t| t.to_string()),
            ),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                args.extend([flag.to_string(), value]);
            }
        }
        if reflector.api_key_secret_ref.is_some() {
            args.extend(["--api-key-env".into(), API_KEY_ENV.into()]);
        }
    }
    args
}

/// Where a dream Job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Active,
    Succeeded,
    Failed,
}

/// The state of `job` from its conditions (a Job without a final condition is active).
pub fn state(job: &Job) -> JobState {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if is("Complete") {
        JobState::Succeeded
    } else if is("Failed") {
        JobState::Failed
    } else {
        JobState::Active
    }
}

/// When a finished Job finished (completion, or the time its final condition was set).
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max()
    })
}

/// The agent a dream Job runs for (from its label).
pub fn agent_of(job: &Job) -> Option<&str> {
    job.metadata.labels.as_ref()?.get(DREAM_AGENT_LABEL).map(String::as_str)
}

/// Labels that select every Job of a schedule.
pub fn schedule_selector(schedule: &str) -> String {
    format!("{SCHEDULE_LABEL}={schedule}")
}

/// The labels of the dreamer's RBAC objects.
pub fn managed_labels(schedule: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SCHEDULE_LABEL.to_string(), schedule.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "reverie".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(extra: Value) -> DreamSchedule {
        let mut spec = json!({"schedule": "@daily", "agents": {"names": ["support"]}});
        if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
            "metadata": {"name": "nightly", "namespace": "team", "uid": "u-1"},
            "spec": spec
        }))
        .unwrap()
    }

    fn agent(name: &str, extra: Value) -> Agent {
        let mut spec =
            json!({"model": "m", "instructions": "i", "sessions": {"hostPath": {"path": "/data/s"}, "path": name}});
        if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}")},
            "spec": spec
        }))
        .unwrap()
    }

    fn command(job: &Job) -> Vec<String> {
        job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0]
            .command
            .clone()
            .unwrap()
    }

    fn flag(command: &[String], flag: &str) -> Option<String> {
        let at = command.iter().position(|a| a == flag)?;
        command.get(at + 1).cloned()
    }

    #[test]
    fn job_names_are_deterministic_per_fire_time_and_bounded() {
        let at: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let trigger = Trigger::Scheduled(at);
        assert_eq!(
            trigger.job_name("nightly", "support"),
            format!("nightly-support-{}", at.as_second() / 60)
        );
        let long = trigger.job_name(&"s".repeat(40), &"a".repeat(40));
        assert!(long.len() <= 63);
        assert_ne!(
            long,
            Trigger::Scheduled(at + jiff::SignedDuration::from_mins(1)).job_name(&"s".repeat(40), &"a".repeat(40))
        );
        let now_a = Trigger::Now("1".into()).job_name("nightly", "support");
        assert_eq!(now_a, Trigger::Now("1".into()).job_name("nightly", "support"));
        assert_ne!(now_a, Trigger::Now("2".into()).job_name("nightly", "support"));
    }

    #[test]
    fn the_pod_runs_the_in_cluster_pass_with_read_only_sessions_and_a_hardened_context() {
        let schedule = schedule(json!({"jobTemplate": {"backoffLimit": 0, "activeDeadlineSeconds": 60,
            "resources": {"limits": {"memory": "256Mi"}}}}));
        let support = agent("support", json!({}));
        let plan = PassPlan {
            target: &support,
            pool: &[&support],
            min_agents: 1,
        };
        let job = build(&schedule, &plan, &Trigger::Now("x".into()), "reverie:test");
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(60));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("DreamSchedule", Some(true)));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(DREAMER_SERVICE_ACCOUNT));
        assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let container = &pod.containers[0];
        let hardened = container.security_context.as_ref().unwrap();
        assert_eq!(hardened.read_only_root_filesystem, Some(true));
        assert_eq!(hardened.allow_privilege_escalation, Some(false));
        assert_eq!(
            container.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
            "256Mi"
        );
        let command = command(&job);
        assert_eq!(&command[..4], ["reverie", "dream", "--agent", "team/support"]);
        assert_eq!(flag(&command, "--sessions").as_deref(), Some(SESSIONS_MOUNT));
        assert_eq!(flag(&command, "--reflector").as_deref(), Some("builtin"));
        let mount = &container.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.read_only, mount.sub_path.as_deref()),
            (Some(true), Some("support"))
        );
        assert!(container.env.as_ref().is_none_or(Vec::is_empty), "builtin needs no key");
    }

    #[test]
    fn a_model_reflector_gets_its_key_from_the_secret_and_its_settings_as_flags() {
        let schedule = schedule(
            json!({"reflector": {"provider": "anthropic", "model": "claude", "maxOutputTokens": 900,
            "apiKeySecretRef": {"name": "llm", "key": "token"}}}),
        );
        let support = agent("support", json!({}));
        let plan = PassPlan {
            target: &support,
            pool: &[&support],
            min_agents: 1,
        };
        let job = build(&schedule, &plan, &Trigger::Now("x".into()), "img");
        let command = command(&job);
        assert_eq!(flag(&command, "--model").as_deref(), Some("claude"));
        assert_eq!(flag(&command, "--max-output-tokens").as_deref(), Some("900"));
        assert_eq!(flag(&command, "--api-key-env").as_deref(), Some(API_KEY_ENV));
        let container = &job.spec.unwrap().template.spec.unwrap().containers[0];
        let env = &container.env.as_ref().unwrap()[0];
        let secret = env.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((secret.name.as_str(), secret.key.as_str()), ("llm", "token"));
    }

    #[test]
    fn a_collective_pass_mounts_every_agent_and_a_pvc_memory_read_only() {
        let schedule = schedule(json!({}));
        let team = agent(
            "team",
            json!({"memory": {"store": {"persistentVolumeClaim": {"claimName": "mem"}}}}),
        );
        let (a, b) = (agent("a", json!({})), agent("b", json!({})));
        let plan = PassPlan {
            target: &team,
            pool: &[&a, &b],
            min_agents: 2,
        };
        let job = build(&schedule, &plan, &Trigger::Now("x".into()), "img");
        let command = command(&job);
        let sessions: Vec<&String> = command
            .iter()
            .skip_while(|a| *a != "--sessions")
            .step_by(2)
            .take(2)
            .collect();
        assert_eq!(sessions.len(), 2);
        assert!(command.contains(&format!("a={SESSIONS_MOUNT}/a")));
        assert!(command.contains(&format!("b={SESSIONS_MOUNT}/b")));
        assert_eq!(flag(&command, "--min-agents").as_deref(), Some("2"));
        assert_eq!(flag(&command, "--memory-dir").as_deref(), Some(MEMORY_MOUNT));
        let pod = job.spec.unwrap().template.spec.unwrap();
        let memory = pod.volumes.unwrap().into_iter().find(|v| v.name == "memory").unwrap();
        assert_eq!(memory.persistent_volume_claim.unwrap().read_only, Some(true));
    }
}
