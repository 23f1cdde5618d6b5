//! Dereference: what a valid DreamSchedule points at: the agents it selects and its Jobs (from
//! the caches), the Secrets its reflector and output need, and the reports of the Jobs that
//! finished since status last recorded them (from the API, as neither is cached).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, ResourceExt};

use super::runs;
use super::validate::ValidSchedule;
use crate::api::dream_job::CONTAINER;
use crate::api::dream_schedule::{DreamScheduleSpec, DreamScheduleStatus, Output, ReflectorProvider};
use crate::api::rules::Problem;
use crate::api::{Agent, DreamSchedule, SecretKeyReference};
use crate::controller::{Context, Result};

/// The agents a schedule works on.
#[derive(Default)]
pub struct Selection {
    /// Selected agents that have a sessions volume, by name.
    pub agents: Vec<Agent>,
    /// The collective target, when the schedule pools sessions.
    pub target: Option<Agent>,
    /// What the schedule refers to that is missing or unusable.
    pub problems: Vec<Problem>,
}

/// Everything a reconcile reads before it plans.
#[derive(Default)]
pub struct Observed {
    /// Empty when the spec is invalid: an invalid schedule starts nothing.
    pub selection: Selection,
    /// The schedule's Jobs.
    pub jobs: Vec<Job>,
    /// The termination message of each finished Job status does not record yet, by Job name
    /// (`None` when its pod is gone or wrote none).
    pub messages: BTreeMap<String, Option<String>>,
}

pub async fn dereference(
    ctx: &Context,
    schedule: &DreamSchedule,
    valid: Option<&ValidSchedule>,
    status: &DreamScheduleStatus,
) -> Result<Observed> {
    let namespace = schedule.namespace().unwrap_or_default();
    let selection = match valid {
        Some(valid) => select(ctx, &namespace, &schedule.spec, valid).await?,
        None => Selection::default(),
    };
    let jobs = schedule_jobs(ctx, &namespace, &schedule.name_any(), status).await?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &namespace);
    let mut messages = BTreeMap::new();
    for job in runs::unrecorded_finished(&jobs, status) {
        let message = crate::kube_ext::job_pod_message(&pods, &job.name_any(), Some(CONTAINER)).await?;
        messages.insert(job.name_any(), message);
    }
    Ok(Observed {
        selection,
        jobs,
        messages,
    })
}

/// The schedule's Jobs, from the cache. A Job status lists as active that the cache does not
/// hold yet was created moments ago and its watch event is still on its way: it is read from
/// the API, so a reconcile right after a start does not take the pass for gone. In steady
/// state every active Job is cached and this makes no request.
async fn schedule_jobs(
    ctx: &Context,
    namespace: &str,
    schedule: &str,
    status: &DreamScheduleStatus,
) -> Result<Vec<Job>> {
    let mut jobs: Vec<Job> = ctx
        .caches
        .dream_jobs_of(namespace, schedule)
        .iter()
        .map(|job| Job::clone(job))
        .collect();
    let api = Api::<Job>::namespaced(ctx.client.clone(), namespace);
    for active in &status.active {
        let Some(name) = active.name.as_deref() else {
            continue;
        };
        if jobs.iter().any(|job| job.metadata.name.as_deref() == Some(name)) {
            continue;
        }
        if let Some(job) = api.get_opt(name).await? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// The agents the schedule selects, and problems with what it refers to: missing agents,
/// agents without sessions, the reflector's and the output's Secrets.
async fn select(ctx: &Context, namespace: &str, spec: &DreamScheduleSpec, valid: &ValidSchedule) -> Result<Selection> {
    let caches = &ctx.caches;
    let mut selection = Selection::default();
    let (mut agents, mut missing) = caches.find_agents(namespace, spec.agents.names.iter().map(String::as_str));
    if let Some(selector) = &valid.selector {
        agents = caches.agents_matching(namespace, selector);
        if agents.is_empty() {
            selection.problems.push(Problem::new(
                "NoAgentsSelected",
                format!("spec.agents.selector ({selector}) matches no Agent in namespace {namespace}"),
            ));
        }
    }
    if let Some(collective) = &spec.agents.collective {
        let (target, target_missing) = caches.find_agents(namespace, std::iter::once(collective.target.as_str()));
        selection.target = target.into_iter().next().map(|agent| Agent::clone(&agent));
        missing.extend(target_missing);
    }
    if !missing.is_empty() {
        selection.problems.push(Problem::new(
            "AgentNotFound",
            format!("Agent(s) not found in namespace {namespace}: {}", missing.join(", ")),
        ));
    }
    let (with_sessions, without): (Vec<Agent>, Vec<Agent>) = agents
        .iter()
        .map(|agent| Agent::clone(agent))
        .partition(|agent| agent.spec.sessions.is_some());
    if !without.is_empty() {
        let names: Vec<String> = without.iter().map(ResourceExt::name_any).collect();
        selection.problems.push(Problem::new(
            "NoSessionsVolume",
            format!(
                "Agent(s) {} have no spec.sessions, so there is nothing to dream over; they are skipped",
                names.join(", ")
            ),
        ));
    }
    selection.agents = with_sessions;
    if spec.agents.collective.is_some() && selection.target.is_none() {
        selection.agents.clear();
    }
    if let Some(secret_ref) = &spec.reflector.api_key_secret_ref
        && spec.reflector.provider != ReflectorProvider::Builtin
    {
        selection
            .problems
            .extend(check_secret_key(ctx, namespace, secret_ref, "spec.reflector.apiKeySecretRef").await?);
    }
    if let Output::Git(git) = &spec.output
        && let Some(auth) = &git.auth_secret_ref
    {
        for key in crate::gitops::required_secret_keys(git) {
            let secret_ref = SecretKeyReference {
                name: auth.name.clone(),
                key: key.to_string(),
            };
            selection
                .problems
                .extend(check_secret_key(ctx, namespace, &secret_ref, "spec.output.git.authSecretRef").await?);
        }
    }
    Ok(selection)
}

/// A problem when the Secret or its key is missing; `field` names where the spec refers to it.
async fn check_secret_key(
    ctx: &Context,
    namespace: &str,
    secret_ref: &SecretKeyReference,
    field: &str,
) -> Result<Option<Problem>> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&secret_ref.name).await? else {
        return Ok(Some(Problem::new(
            "SecretNotFound",
            format!("{field}: Secret {namespace}/{} does not exist", secret_ref.name),
        )));
    };
    let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&secret_ref.key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(&secret_ref.key));
    Ok((!has_key).then(|| {
        Problem::new(
            "SecretKeyNotFound",
            format!(
                "{field}: Secret {namespace}/{} has no key {:?}",
                secret_ref.name, secret_ref.key
            ),
        )
    }))
}
