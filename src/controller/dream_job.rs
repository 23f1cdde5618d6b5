//! The dream Job of one pass: its name, the pod that runs `reverie dream` in-cluster, and how
//! to read a finished Job's outcome. Pure: building and reading objects, no API calls.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, HostPathVolumeSource, NFSVolumeSource,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::{Error, Result};
use crate::api::agent::{MemoryStore, SessionsSpec};
use crate::api::dream_job::{
    API_KEY_ENV, CONTAINER, DREAM_AGENT_LABEL, DREAMER_SERVICE_ACCOUNT, MEMORY_MOUNT, RESULT_FILE, SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION, SESSIONS_MOUNT,
};
use crate::api::dream_schedule::{DreamJobTemplate, DreamScheduleSpec, GitOutput, Output, ReflectorProvider};
use crate::api::{Agent, DreamSchedule, rules};
use crate::naming::{bounded_name, short_hash};

/// Defaults when the schedule's `jobTemplate` sets none: one retry, one hour.
const DEFAULT_BACKOFF_LIMIT: i32 = 1;
const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 3600;
/// The image's `nonroot` user and group (see the Dockerfile), which the dream pod runs as.
const NONROOT_ID: i64 = 65532;

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

/// What the dream container runs and reads: its command line, environment, and the pod's
/// volumes with the container's mounts of them.
struct PassPod {
    command: Vec<String>,
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

/// The dream Job for `plan`, owned by the schedule. Fails when the schedule has no uid (not
/// yet stored by the API server): the owner reference, which garbage-collects the Job with
/// its schedule, needs one.
pub fn build(schedule: &DreamSchedule, plan: &PassPlan<'_>, trigger: &Trigger, image: &str) -> Result<Job> {
    let owner = OwnerReference {
        // A foreground deletion of the schedule waits until its Jobs are gone.
        block_owner_deletion: Some(true),
        ..schedule
            .controller_owner_ref(&())
            .ok_or(Error::MissingObjectKey("metadata.uid"))?
    };
    let name = schedule.metadata.name.clone().unwrap_or_default();
    let agent = plan.target.metadata.name.clone().unwrap_or_default();
    let job_name = trigger.job_name(&name, &agent);
    let template = schedule.spec.job_template.clone().unwrap_or_default();
    let labels = pass_labels(&name, &agent);
    let pod = pass_pod(schedule, plan, &job_name)?;
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name),
            namespace: Some(schedule.metadata.namespace.clone().unwrap_or_default()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                SCHEDULED_AT_ANNOTATION.to_string(),
                trigger.annotation(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(template.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
            active_deadline_seconds: Some(
                template
                    .active_deadline_seconds
                    .unwrap_or(DEFAULT_ACTIVE_DEADLINE_SECONDS),
            ),
            ttl_seconds_after_finished: template.ttl_seconds_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(&template, image, pod)),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// The labels of a pass's Job and pod: which schedule and agent it is for.
fn pass_labels(schedule: &str, agent: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SCHEDULE_LABEL.to_string(), schedule.to_string()),
        (DREAM_AGENT_LABEL.to_string(), agent.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "reverie".to_string()),
        ("app.kubernetes.io/component".to_string(), "dream".to_string()),
    ])
}

/// The `reverie dream` command line, its environment and its volumes for `plan`.
fn pass_pod(schedule: &DreamSchedule, plan: &PassPlan<'_>, job_name: &str) -> Result<PassPod> {
    let spec = &schedule.spec;
    let namespace = schedule.metadata.namespace.as_deref().unwrap_or_default();
    let agent = plan.target.metadata.name.as_deref().unwrap_or_default();
    let (volumes, mounts, sessions_args) = volumes(plan);
    let mut command = vec![
        "reverie".to_string(),
        "dream".into(),
        "--agent".into(),
        format!("{namespace}/{agent}"),
        "--schedule".into(),
        schedule.metadata.name.clone().unwrap_or_default(),
        "--job".into(),
        job_name.to_string(),
        "--result-file".into(),
        RESULT_FILE.into(),
    ];
    command.extend(sessions_args);
    command.extend(pass_args(spec, plan.min_agents));
    if matches!(plan.target.spec.memory.store, MemoryStore::PersistentVolumeClaim(_)) {
        command.extend(["--memory-dir".to_string(), MEMORY_MOUNT.to_string()]);
    }
    let mut pod = PassPod {
        command,
        env: api_key_env(spec).into_iter().collect(),
        volumes,
        mounts,
    };
    if let Output::Git(git) = &spec.output {
        add_git_output(&mut pod, git);
    }
    Ok(pod)
}

/// The model reflector's API key from its Secret (the builtin reflector needs none).
fn api_key_env(spec: &DreamScheduleSpec) -> Option<EnvVar> {
    if spec.reflector.provider == ReflectorProvider::Builtin {
        return None;
    }
    let secret = spec.reflector.api_key_secret_ref.as_ref()?;
    Some(EnvVar {
        name: API_KEY_ENV.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    })
}

/// Git output: the `--git-…` flags, the Secret's token as env and SSH key as files, a writable
/// /tmp for the clone.
fn add_git_output(pod: &mut PassPod, git: &GitOutput) {
    let git = crate::gitops::job::pod_settings(git);
    pod.command.extend(git.args);
    pod.env.extend(git.env);
    pod.volumes.extend(git.volumes);
    pod.mounts.extend(git.mounts);
}

/// The dream pod: one hardened container, run once, as the dreamer's ServiceAccount unless
/// the schedule's `jobTemplate` names another.
fn pod_spec(template: &DreamJobTemplate, image: &str, pod: PassPod) -> PodSpec {
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(template.image.clone().unwrap_or_else(|| image.to_string())),
        command: Some(pod.command),
        env: Some(pod.env),
        resources: Some(template.resources.clone().unwrap_or_default()),
        // The pass writes its report here, so the operator reads it from the pod's status.
        termination_message_path: Some(RESULT_FILE.to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: Some(container_security_context()),
        volume_mounts: Some(pod.mounts),
        ..Container::default()
    };
    PodSpec {
        restart_policy: Some("Never".to_string()),
        service_account_name: Some(
            template
                .service_account_name
                .clone()
                .unwrap_or_else(|| DREAMER_SERVICE_ACCOUNT.to_string()),
        ),
        // The pass reads its Agents and their memory, and creates its MemoryProposal, through the API.
        automount_service_account_token: Some(true),
        node_selector: Some(template.node_selector.clone()),
        tolerations: Some(template.tolerations.clone()),
        security_context: Some(pod_security_context()),
        containers: vec![container],
        volumes: Some(pod.volumes),
        ..PodSpec::default()
    }
}

/// Non-root, with `fsGroup` so the nonroot user can read the mounted volumes.
fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT_ID),
        run_as_group: Some(NONROOT_ID),
        fs_group: Some(NONROOT_ID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// No privilege escalation, no capabilities, a read-only root file system.
fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The sessions volumes (read-only) and, for a PVC store, the memory volume; and the
/// `--sessions` arguments that point the pass at them.
fn volumes(plan: &PassPlan<'_>) -> (Vec<Volume>, Vec<VolumeMount>, Vec<String>) {
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
        mounts.push(read_only_mount(&volume, &path, sessions.path.as_deref()));
        args.push("--sessions".to_string());
        args.push(if collective {
            format!("{agent_name}={path}")
        } else {
            path
        });
        if !sessions.format.is_auto() {
            args.extend([
                "--sessions-format".to_string(),
                format!("{agent_name}={}", sessions.format.name()),
            ]);
        }
    }
    if let MemoryStore::PersistentVolumeClaim(pvc) = &plan.target.spec.memory.store {
        volumes.push(Volume {
            name: "memory".to_string(),
            persistent_volume_claim: Some(read_only_claim(&pvc.claim_name)),
            ..Volume::default()
        });
        mounts.push(read_only_mount("memory", MEMORY_MOUNT, pvc.path.as_deref()));
    }
    (volumes, mounts, args)
}

/// A read-only mount of `volume` at `path`. The sub path is the agent's directory as written
/// in its spec, trimmed of slashes because a mount's `subPath` must be relative.
fn read_only_mount(volume: &str, path: &str, sub_path: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        sub_path: sub_path
            .filter(|p| !p.is_empty())
            .map(|p| p.trim_matches('/').to_string()),
        ..VolumeMount::default()
    }
}

fn read_only_claim(claim_name: &str) -> PersistentVolumeClaimVolumeSource {
    PersistentVolumeClaimVolumeSource {
        claim_name: claim_name.to_string(),
        read_only: Some(true),
    }
}

/// An agent's sessions volume as the pass sees it: read-only whatever the agent's spec says,
/// and a host path that must already exist (a pass never creates one).
fn sessions_volume(name: &str, sessions: &SessionsSpec) -> Volume {
    let mut volume = Volume {
        name: name.to_string(),
        ..Volume::default()
    };
    if let Some(pvc) = &sessions.persistent_volume_claim {
        volume.persistent_volume_claim = Some(read_only_claim(&pvc.claim_name));
    } else if let Some(nfs) = &sessions.nfs {
        volume.nfs = Some(NFSVolumeSource {
            server: nfs.server.clone(),
            path: nfs.path.clone(),
            read_only: Some(true),
        });
    } else if let Some(host_path) = &sessions.host_path {
        volume.host_path = Some(HostPathVolumeSource {
            path: host_path.path.clone(),
            type_: Some("Directory".to_string()),
        });
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
        "--effect-min-sessions".into(),
        spec.curation.effect.min_sessions.to_string(),
        "--archive-ineffective-after".into(),
        spec.curation.effect.archive_ineffective_after.to_string(),
        "--effect-window".into(),
        spec.curation.effect.window.to_string(),
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
    use serde_json::{Value, json};

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
        let job = build(&schedule, &plan, &Trigger::Now("x".into()), "reverie:test").unwrap();
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
        let job = build(&schedule, &plan, &Trigger::Now("x".into()), "img").unwrap();
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
        let job = build(&schedule, &plan, &Trigger::Now("x".into()), "img").unwrap();
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

    #[test]
    fn an_agent_s_transcript_format_reaches_the_pass_as_the_cli_reads_it() {
        use clap::Parser;
        let schedule = schedule(json!({}));
        let (a, b) = (
            agent(
                "a",
                json!({"sessions": {"hostPath": {"path": "/s"}, "format": "claude-code"}}),
            ),
            agent("b", json!({})),
        );
        let plan = PassPlan {
            target: &a,
            pool: &[&a, &b],
            min_agents: 2,
        };
        let command = command(&build(&schedule, &plan, &Trigger::Now("x".into()), "img").unwrap());
        assert_eq!(flag(&command, "--sessions-format").as_deref(), Some("a=claude-code"));
        assert_eq!(
            command.iter().filter(|c| *c == "--sessions-format").count(),
            1,
            "auto is not written"
        );

        let cli = crate::cli::Cli::try_parse_from(&command).expect("the pod's command is one the binary takes");
        let crate::cli::Command::Dream(args) = cli.command else {
            panic!("a dream command")
        };
        let roots = crate::cli::dream::session_roots(&args).unwrap();
        let formats: Vec<(&str, Option<String>)> = roots
            .iter()
            .map(|r| (r.agent.as_str(), r.format.map(|f| f.to_string())))
            .collect();
        assert_eq!(formats, [("a", Some("claude-code".into())), ("b", None)]);
    }

    fn single_pass(schedule: &DreamSchedule, target: &Agent) -> Result<Job> {
        let plan = PassPlan {
            target,
            pool: &[target],
            min_agents: 1,
        };
        build(schedule, &plan, &Trigger::Now("x".into()), "img")
    }

    fn pod(job: &Job) -> &PodSpec {
        job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn a_schedule_without_a_uid_gets_an_error_not_an_ownerless_job() {
        let mut schedule = schedule(json!({}));
        schedule.metadata.uid = None;
        let error = single_pass(&schedule, &agent("support", json!({}))).unwrap_err();
        assert!(matches!(error, Error::MissingObjectKey("metadata.uid")), "{error}");
    }

    #[test]
    fn the_job_is_named_labelled_and_owned_for_its_pass() {
        let at: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let support = agent("support", json!({}));
        let plan = PassPlan {
            target: &support,
            pool: &[&support],
            min_agents: 1,
        };
        let job = build(&schedule(json!({})), &plan, &Trigger::Scheduled(at), "img").unwrap();
        let meta = &job.metadata;
        assert_eq!(meta.name, Some(Trigger::Scheduled(at).job_name("nightly", "support")));
        assert_eq!(meta.namespace.as_deref(), Some("team"));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[SCHEDULE_LABEL], "nightly");
        assert_eq!(labels[DREAM_AGENT_LABEL], "support");
        assert_eq!(labels["app.kubernetes.io/component"], "dream");
        assert_eq!(
            meta.annotations.as_ref().unwrap()[SCHEDULED_AT_ANNOTATION],
            at.to_string()
        );
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("reverie.dev/v1alpha1", "nightly", "u-1")
        );
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.template.metadata.as_ref().unwrap().labels.as_ref(), Some(labels));
        assert_eq!(
            (
                spec.backoff_limit,
                spec.active_deadline_seconds,
                spec.ttl_seconds_after_finished
            ),
            (Some(DEFAULT_BACKOFF_LIMIT), Some(DEFAULT_ACTIVE_DEADLINE_SECONDS), None)
        );
        let pod = pod(&job);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(true));
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(
            (security.run_as_user, security.run_as_group, security.fs_group),
            (Some(NONROOT_ID), Some(NONROOT_ID), Some(NONROOT_ID))
        );
        assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let container = &pod.containers[0];
        assert_eq!(
            (container.name.as_str(), container.image.as_deref()),
            (CONTAINER, Some("img"))
        );
        assert_eq!(container.termination_message_path.as_deref(), Some(RESULT_FILE));
        assert_eq!(
            container.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let capabilities = container.security_context.as_ref().unwrap().capabilities.as_ref();
        assert_eq!(capabilities.unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
    }

    #[test]
    fn the_job_template_overrides_image_account_placement_and_cleanup() {
        let schedule = schedule(
            json!({"jobTemplate": {"image": "custom:1", "serviceAccountName": "custom-sa",
            "ttlSecondsAfterFinished": 300, "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists"}]}}),
        );
        let job = single_pass(&schedule, &agent("support", json!({}))).unwrap();
        assert_eq!(job.spec.as_ref().unwrap().ttl_seconds_after_finished, Some(300));
        let pod = pod(&job);
        assert_eq!(pod.containers[0].image.as_deref(), Some("custom:1"));
        assert_eq!(pod.service_account_name.as_deref(), Some("custom-sa"));
        assert_eq!(pod.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(pod.tolerations.as_ref().unwrap()[0].key.as_deref(), Some("k"));
    }

    #[test]
    fn sessions_are_mounted_read_only_whatever_their_source() {
        let schedule = schedule(json!({}));
        let pvc = agent(
            "pvc",
            json!({"sessions": {"persistentVolumeClaim": {"claimName": "tr", "readOnly": false}, "path": "/x/y/"}}),
        );
        let nfs = agent(
            "nfs",
            json!({"sessions": {"nfs": {"server": "nfs.local", "path": "/exp", "readOnly": false}}}),
        );
        let host = agent(
            "host",
            json!({"sessions": {"hostPath": {"path": "/h", "type": "DirectoryOrCreate"}}}),
        );
        let volume = |agent: &Agent| pod(&single_pass(&schedule, agent).unwrap()).volumes.clone().unwrap()[0].clone();
        let claim = volume(&pvc).persistent_volume_claim.unwrap();
        assert_eq!((claim.claim_name.as_str(), claim.read_only), ("tr", Some(true)));
        let export = volume(&nfs).nfs.unwrap();
        assert_eq!(
            (export.server.as_str(), export.path.as_str(), export.read_only),
            ("nfs.local", "/exp", Some(true))
        );
        let host_path = volume(&host).host_path.unwrap();
        assert_eq!(
            (host_path.path.as_str(), host_path.type_.as_deref()),
            ("/h", Some("Directory"))
        );
        let job = single_pass(&schedule, &pvc).unwrap();
        let mount = &pod(&job).containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (
                mount.name.as_str(),
                mount.mount_path.as_str(),
                mount.sub_path.as_deref()
            ),
            ("sessions-0", SESSIONS_MOUNT, Some("x/y"))
        );
    }

    #[test]
    fn git_output_adds_its_secret_env_ssh_key_and_scratch_volume() {
        use crate::gitops::job::{SSH_VOLUME, WORK_MOUNT, WORK_VOLUME};
        use crate::gitops::{SSH_KEY_DIR, TOKEN_ENV, USERNAME_ENV};
        let schedule =
            schedule(json!({"output": {"git": {"repository": "ssh://g/r.git", "authSecretRef": {"name": "gitcred"}}}}));
        let job = single_pass(&schedule, &agent("support", json!({}))).unwrap();
        assert_eq!(
            flag(&command(&job), "--git-repository").as_deref(),
            Some("ssh://g/r.git")
        );
        let pod = pod(&job);
        let container = &pod.containers[0];
        let env: Vec<&str> = container.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env, [TOKEN_ENV, USERNAME_ENV]);
        let token = container.env.as_ref().unwrap()[0].value_from.as_ref().unwrap();
        assert_eq!(token.secret_key_ref.as_ref().unwrap().optional, Some(true));
        let volumes = pod.volumes.as_ref().unwrap();
        let work = volumes.iter().find(|v| v.name == WORK_VOLUME).unwrap();
        assert!(work.empty_dir.is_some());
        let ssh = volumes
            .iter()
            .find(|v| v.name == SSH_VOLUME)
            .unwrap()
            .secret
            .as_ref()
            .unwrap();
        assert_eq!(
            (ssh.secret_name.as_deref(), ssh.default_mode),
            (Some("gitcred"), Some(0o400))
        );
        let mounts: Vec<(&str, Option<bool>)> = container
            .volume_mounts
            .iter()
            .flatten()
            .skip(1)
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(mounts, [(WORK_MOUNT, None), (SSH_KEY_DIR, Some(true))]);
    }
}
