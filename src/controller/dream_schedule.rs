//! DreamSchedule reconciler: validate → dereference the agents (and the reflector's Secret) →
//! observe the schedule's Jobs → start the passes that are due → trim the Job history →
//! update status → requeue exactly at the next fire time.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::agent::find_agents;
use super::dream_job::{self, JobState, PassPlan, Trigger};
use super::report_acceptance_change;
use super::status::apply_status;
use super::{Context, Result, instrumented, publish_event};
use crate::api::dream_job::{DREAM_NOW_ANNOTATION, RunReport, SuspectedInjection};
use crate::api::dream_schedule::{
    AgentRun, ConcurrencyPolicy, DreamScheduleSpec, DreamScheduleStatus, Output, ReflectorProvider,
};
use crate::api::rules::{self, Problem, acceptance_conditions};
use crate::api::{Agent, DreamSchedule, SecretKeyReference, conditions};
use crate::schedule::{Due, Schedule};

pub const CONTROLLER: &str = "dreamschedule";

/// Results of a pass as recorded in `status.lastRuns`.
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const SKIPPED: &str = "Skipped";

pub async fn reconcile(schedule: Arc<DreamSchedule>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_schedule(&schedule, &ctx)).await
}

/// The agents a schedule works on, once dereferenced.
#[derive(Default)]
struct Selection {
    /// Selected agents that have a sessions volume, by name.
    agents: Vec<Agent>,
    /// The collective target, when the schedule pools sessions.
    target: Option<Agent>,
    problems: Vec<Problem>,
}

impl Selection {
    /// The passes one trigger starts: one per agent, or one collective pass.
    fn plans<'a>(&'a self, pool: &'a [&'a Agent], min_agents: u32) -> Vec<PassPlan<'a>> {
        match &self.target {
            Some(target) => vec![PassPlan {
                target,
                pool,
                min_agents,
            }],
            None => pool
                .iter()
                .map(|agent| PassPlan {
                    target: agent,
                    pool: std::slice::from_ref(agent),
                    min_agents: 1,
                })
                .collect(),
        }
    }
}

async fn reconcile_schedule(schedule: &DreamSchedule, ctx: &Context) -> Result<Action> {
    let namespace = schedule.namespace().unwrap_or_default();
    let name = schedule.name_any();
    let api = Api::<DreamSchedule>::namespaced(ctx.client.clone(), &namespace);
    let now = ctx.clock.now();
    let current = schedule.status.clone().unwrap_or_default();

    let spec_problems = validate(&schedule.spec);
    let selection = if spec_problems.is_empty() {
        dereference(ctx, &namespace, &schedule.spec).await?
    } else {
        Selection::default()
    };
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &namespace);
    let mut jobs = jobs_api
        .list(&ListParams::default().labels(&dream_job::schedule_selector(&name)))
        .await?
        .items;
    let mut status = DreamScheduleStatus {
        observed_generation: schedule.metadata.generation,
        ..current.clone()
    };
    observe_runs(ctx, schedule, &jobs, &mut status).await?;

    let parsed = Schedule::parse(&schedule.spec.schedule, &schedule.spec.time_zone).ok();
    let due = match (&parsed, spec_problems.is_empty()) {
        (Some(parsed), true) => Some(due_now(schedule, parsed, &current, now)),
        _ => None,
    };
    if let Some(due) = &due {
        report_missed(ctx, schedule, due).await;
        let triggers = triggers(schedule, &current, due);
        if !triggers.is_empty() && !selection.agents.is_empty() {
            super::dreamer_rbac::ensure(ctx, schedule, &selection.agents, selection.target.as_ref()).await?;
        }
        let pool: Vec<&Agent> = selection.agents.iter().collect();
        let min_agents = schedule.spec.agents.collective.as_ref().map_or(1, |c| c.min_agents);
        for trigger in &triggers {
            for plan in selection.plans(&pool, min_agents) {
                start_pass(ctx, schedule, &plan, trigger, &mut jobs, &mut status, now).await?;
            }
            match trigger {
                Trigger::Scheduled(at) => status.last_schedule_time = Some(Time(*at)),
                Trigger::Now(value) => status.last_dream_now = Some(value.clone()),
            }
        }
    }
    trim_history(ctx, schedule, &mut jobs).await?;

    status.active = jobs
        .iter()
        .filter(|job| dream_job::state(job) == JobState::Active)
        .map(job_reference)
        .collect();
    status.next_schedule_time = due
        .as_ref()
        .and_then(|d| d.next)
        .filter(|_| !schedule.spec.suspend)
        .map(Time);
    let wanted = acceptance_conditions(
        &spec_problems,
        &selection.problems,
        "the schedule is valid",
        "the schedule and its agents are ready",
    );
    status.conditions =
        conditions::merge_conditions(&current.conditions, &wanted, schedule.metadata.generation, &ctx.now());
    report_acceptance_change(ctx, schedule, Some(&current.conditions), &status.conditions).await;
    apply_status(&api, schedule, schedule.status.as_ref(), &status).await?;
    Ok(requeue_at(status.next_schedule_time.as_ref().map(|t| t.0), now))
}

/// Requeue exactly when the next pass is due (a millisecond late rather than early), or wait for
/// a change when none is.
fn requeue_at(next: Option<Timestamp>, now: Timestamp) -> Action {
    match next {
        Some(next) => {
            let wait = next.duration_since(now).unsigned_abs() + Duration::from_millis(1);
            Action::requeue(if next > now { wait } else { Duration::from_millis(1) })
        }
        None => Action::await_change(),
    }
}

/// Which fire time is due now: the most recent one not started yet (suspension skips them).
fn due_now(schedule: &DreamSchedule, parsed: &Schedule, status: &DreamScheduleStatus, now: Timestamp) -> Due {
    let created = schedule.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let since = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or(created)
        .unwrap_or(now);
    let deadline = schedule
        .spec
        .starting_deadline_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64));
    parsed.due(since, now, deadline)
}

/// The passes to start now: the due fire time (unless suspended) and a new run-now request.
fn triggers(schedule: &DreamSchedule, status: &DreamScheduleStatus, due: &Due) -> Vec<Trigger> {
    let mut triggers = Vec::new();
    if !schedule.spec.suspend
        && let Some(fire) = due.fire
    {
        triggers.push(Trigger::Scheduled(fire));
    }
    let requested = schedule
        .annotations()
        .get(DREAM_NOW_ANNOTATION)
        .filter(|v| !v.is_empty());
    if let Some(value) = requested
        && status.last_dream_now.as_ref() != Some(value)
    {
        triggers.push(Trigger::Now(value.clone()));
    }
    triggers
}

/// Warns about fire times that will never run.
async fn report_missed(ctx: &Context, schedule: &DreamSchedule, due: &Due) {
    if schedule.spec.suspend {
        return;
    }
    if due.too_many_missed {
        let note = format!(
            "more than {} fire times were missed (operator down or schedule suspended); only the most recent one starts. Set startingDeadlineSeconds to bound how late a pass may start",
            crate::schedule::MISSED_LIMIT
        );
        publish_event(
            ctx,
            schedule,
            EventType::Warning,
            "TooManyMissedTimes",
            "Schedule",
            note,
        )
        .await;
    }
    if let Some(missed) = due.past_deadline {
        let note = format!(
            "the pass due at {missed} did not start within startingDeadlineSeconds ({}s); it is skipped",
            schedule.spec.starting_deadline_seconds.unwrap_or_default()
        );
        publish_event(
            ctx,
            schedule,
            EventType::Warning,
            "MissedStartingDeadline",
            "Schedule",
            note,
        )
        .await;
    }
}

/// Starts one pass under the concurrency policy, recording the outcome in `status.lastRuns`.
async fn start_pass(
    ctx: &Context,
    schedule: &DreamSchedule,
    plan: &PassPlan<'_>,
    trigger: &Trigger,
    jobs: &mut Vec<Job>,
    status: &mut DreamScheduleStatus,
    now: Timestamp,
) -> Result<()> {
    let agent = plan.target.name_any();
    let job_name = trigger.job_name(&schedule.name_any(), &agent);
    if jobs.iter().any(|job| job.name_any() == job_name) {
        return Ok(());
    }
    let active: Vec<String> = jobs
        .iter()
        .filter(|job| dream_job::agent_of(job) == Some(agent.as_str()) && dream_job::state(job) == JobState::Active)
        .map(|job| job.name_any())
        .collect();
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &schedule.namespace().unwrap_or_default());
    match (schedule.spec.concurrency_policy, active.first()) {
        (ConcurrencyPolicy::Forbid, Some(running)) => {
            let message = format!("skipped: the previous pass {running} is still running (concurrencyPolicy Forbid)");
            record_run(status, run(&agent, running, SKIPPED, &message, now));
            publish_event(
                ctx,
                schedule,
                EventType::Normal,
                "DreamSkipped",
                "StartDream",
                format!("{agent}: {message}"),
            )
            .await;
            return Ok(());
        }
        (ConcurrencyPolicy::Replace, Some(_)) => {
            for running in &active {
                delete_job(&jobs_api, running).await?;
                let note = format!(
                    "{agent}: deleted the running pass {running} to start {job_name} (concurrencyPolicy Replace)"
                );
                publish_event(ctx, schedule, EventType::Normal, "DreamReplaced", "StartDream", note).await;
            }
            jobs.retain(|job| !active.contains(&job.name_any()));
        }
        _ => {}
    }
    let job = dream_job::build(schedule, plan, trigger, &ctx.image);
    let created = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(created) => created,
        // Created by an earlier reconcile whose status update did not land: not a second pass.
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    jobs.push(created);
    record_run(status, run(&agent, &job_name, RUNNING, "", now));
    let why = match trigger {
        Trigger::Scheduled(at) => format!("scheduled for {at}"),
        Trigger::Now(_) => format!("requested with {}", DREAM_NOW_ANNOTATION),
    };
    let note = format!("started dream Job {job_name} for agent {agent} ({why})");
    publish_event(ctx, schedule, EventType::Normal, "DreamStarted", "StartDream", note).await;
    ctx.metrics.dream_started(match trigger {
        Trigger::Scheduled(_) => "schedule",
        Trigger::Now(_) => "dream-now",
    });
    Ok(())
}

async fn delete_job(api: &Api<Job>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn run(agent: &str, job: &str, result: &str, message: &str, now: Timestamp) -> AgentRun {
    AgentRun {
        agent: agent.to_string(),
        job: job.to_string(),
        result: result.to_string(),
        proposal: None,
        tokens: None,
        sessions_reviewed: None,
        message: Some(message.to_string()).filter(|m| !m.is_empty()),
        time: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
    }
}

/// Replaces the agent's entry in `lastRuns` (kept sorted by agent).
fn record_run(status: &mut DreamScheduleStatus, run: AgentRun) {
    status.last_runs.retain(|r| r.agent != run.agent);
    status.last_runs.push(run);
    status.last_runs.sort_by(|a, b| a.agent.cmp(&b.agent));
}

fn job_reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Brings `lastRuns` and `lastSuccessfulTime` up to date with the newest Job of each agent.
/// A finished Job's outcome is read once from its pod's termination message; a failure is
/// reported as a Warning event then.
async fn observe_runs(
    ctx: &Context,
    schedule: &DreamSchedule,
    jobs: &[Job],
    status: &mut DreamScheduleStatus,
) -> Result<()> {
    for job in newest_per_agent(jobs) {
        let Some(agent) = dream_job::agent_of(job) else {
            continue;
        };
        let state = dream_job::state(job);
        if state == JobState::Succeeded
            && let Some(finished) = dream_job::finished_at(job)
            && status.last_successful_time.as_ref().is_none_or(|t| t.0 < finished)
        {
            status.last_successful_time = Some(Time(finished));
        }
        let recorded = status.last_runs.iter().find(|r| r.agent == agent);
        let same_job = recorded.is_some_and(|r| r.job == job.name_any());
        let up_to_date = match state {
            JobState::Active => same_job && recorded.is_some_and(|r| r.result == RUNNING || r.result == SKIPPED),
            JobState::Succeeded | JobState::Failed => {
                same_job && recorded.is_some_and(|r| r.result == SUCCEEDED || r.result == FAILED)
            }
        };
        if up_to_date {
            continue;
        }
        let entry = match state {
            JobState::Active => {
                let created = job.creation_timestamp().map_or_else(Timestamp::now, |t| t.0);
                run(agent, &job.name_any(), RUNNING, "", created)
            }
            JobState::Succeeded | JobState::Failed => finished_run(ctx, schedule, agent, job, state).await?,
        };
        record_run(status, entry);
    }
    Ok(())
}

/// The newest Job of each agent.
fn newest_per_agent(jobs: &[Job]) -> Vec<&Job> {
    let mut newest: std::collections::BTreeMap<&str, &Job> = std::collections::BTreeMap::new();
    for job in jobs {
        let Some(agent) = dream_job::agent_of(job) else {
            continue;
        };
        let key = |j: &Job| (j.creation_timestamp().map(|t| t.0), j.name_any());
        match newest.get(agent) {
            Some(current) if key(current) >= key(job) => {}
            _ => {
                newest.insert(agent, job);
            }
        }
    }
    newest.into_values().collect()
}

/// The run record of a finished Job, from its pod's report.
async fn finished_run(
    ctx: &Context,
    schedule: &DreamSchedule,
    agent: &str,
    job: &Job,
    state: JobState,
) -> Result<AgentRun> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &schedule.namespace().unwrap_or_default());
    let message =
        crate::kube_ext::job_pod_message(&pods, &job.name_any(), Some(crate::api::dream_job::CONTAINER)).await?;
    let report = message.as_deref().and_then(RunReport::parse);
    let finished = dream_job::finished_at(job).unwrap_or_else(|| ctx.clock.now());
    let result = if state == JobState::Succeeded {
        SUCCEEDED
    } else {
        FAILED
    };
    let mut entry = run(agent, &job.name_any(), result, "", finished);
    match report {
        Some(report) => {
            report_injections(ctx, schedule, agent, &job.name_any(), &report.suspected_injections).await;
            entry.proposal = report.proposal;
            entry.tokens = Some(report.tokens);
            entry.sessions_reviewed = Some(report.sessions_reviewed);
            entry.message = Some(report.message).filter(|m| !m.is_empty());
        }
        None => entry.message = message.or_else(|| crate::kube_ext::job_failure(job)),
    }
    if state == JobState::Failed {
        let why = entry
            .message
            .clone()
            .or_else(|| crate::kube_ext::job_failure(job))
            .unwrap_or_else(|| "the Job failed".into());
        if entry.message.is_none() {
            entry.message = Some(why.clone());
        }
        let note = format!(
            "dream Job {} for agent {agent} failed; memory is unchanged: {why}",
            job.name_any()
        );
        publish_event(ctx, schedule, EventType::Warning, "DreamFailed", "Dream", note).await;
    }
    ctx.metrics.dream_finished(result);
    Ok(entry)
}

/// Suspected injections a pass refused: a Warning event on the Agent (what, how often, where to
/// look) and the metric, so an attack shows up where its owner looks.
async fn report_injections(
    ctx: &Context,
    schedule: &DreamSchedule,
    agent: &str,
    job: &str,
    injections: &[SuspectedInjection],
) {
    if injections.is_empty() {
        return;
    }
    let namespace = schedule.namespace().unwrap_or_default();
    for injection in injections {
        ctx.metrics
            .suspected_injection(&namespace, agent, &injection.class, injection.sessions);
    }
    let listed: Vec<String> = injections
        .iter()
        .map(|i| {
            let example = if i.example.is_empty() {
                String::new()
            } else {
                format!(", e.g. session {}", i.example)
            };
            format!("{} in {} sessions{example}: \"{}\"", i.class, i.sessions, i.excerpt)
        })
        .collect();
    let note = format!(
        "dream Job {job} refused {} suspected injection(s) found in this agent's transcripts; nothing of them was proposed: {}",
        injections.len(),
        listed.join("; ")
    );
    let reference = ObjectReference {
        api_version: Some(<Agent as kube::Resource>::api_version(&()).into_owned()),
        kind: Some(<Agent as kube::Resource>::kind(&()).into_owned()),
        name: Some(agent.to_string()),
        namespace: Some(namespace),
        ..Default::default()
    };
    super::publish_event_on(ctx, &reference, EventType::Warning, "SuspectedInjection", "Dream", note).await;
}

/// Deletes finished Jobs beyond the history limits, per agent: the newest
/// `successfulJobsHistoryLimit` succeeded and `failedJobsHistoryLimit` failed Jobs are kept.
async fn trim_history(ctx: &Context, schedule: &DreamSchedule, jobs: &mut Vec<Job>) -> Result<()> {
    let expired = expired_jobs(
        jobs,
        schedule.spec.successful_jobs_history_limit as usize,
        schedule.spec.failed_jobs_history_limit as usize,
    );
    if expired.is_empty() {
        return Ok(());
    }
    let api = Api::<Job>::namespaced(ctx.client.clone(), &schedule.namespace().unwrap_or_default());
    for name in &expired {
        delete_job(&api, name).await?;
    }
    jobs.retain(|job| !expired.contains(&job.name_any()));
    Ok(())
}

/// Names of finished Jobs past the history limits (pure, for tests).
pub fn expired_jobs(jobs: &[Job], keep_succeeded: usize, keep_failed: usize) -> Vec<String> {
    let mut finished: Vec<(&str, JobState, Option<Timestamp>, String)> = jobs
        .iter()
        .filter(|job| job.metadata.deletion_timestamp.is_none())
        .filter_map(|job| {
            let state = dream_job::state(job);
            (state != JobState::Active).then(|| {
                let agent = dream_job::agent_of(job).unwrap_or_default();
                let at = dream_job::finished_at(job).or_else(|| job.creation_timestamp().map(|t| t.0));
                (agent, state, at, job.name_any())
            })
        })
        .collect();
    // Newest first within each agent and outcome.
    finished.sort_by(|a, b| {
        a.0.cmp(b.0)
            .then((a.1 as u8).cmp(&(b.1 as u8)))
            .then(b.2.cmp(&a.2))
            .then(b.3.cmp(&a.3))
    });
    let mut expired = Vec::new();
    let mut seen: std::collections::HashMap<(&str, u8), usize> = std::collections::HashMap::new();
    for (agent, state, _, name) in finished {
        let count = seen.entry((agent, state as u8)).or_default();
        *count += 1;
        let keep = if state == JobState::Succeeded {
            keep_succeeded
        } else {
            keep_failed
        };
        if *count > keep {
            expired.push(name);
        }
    }
    expired
}

/// Everything wrong with a schedule's spec on its own: the kind's rules and the output's
/// settings (GitOps checks live with the GitOps code).
pub fn validate(spec: &DreamScheduleSpec) -> Vec<Problem> {
    let mut problems = rules::dream_schedule::validate(spec);
    problems.extend(
        crate::gitops::validate(&spec.output)
            .into_iter()
            .map(|message| Problem::new("InvalidOutput", message)),
    );
    problems
}

/// The agents the schedule selects, and problems with what it refers to: missing agents,
/// agents without sessions, the reflector's Secret.
async fn dereference(ctx: &Context, namespace: &str, spec: &DreamScheduleSpec) -> Result<Selection> {
    let api = Api::<Agent>::namespaced(ctx.client.clone(), namespace);
    let mut selection = Selection::default();
    let (mut agents, mut missing) = find_agents(&api, spec.agents.names.iter().map(String::as_str)).await?;
    if let Some(selector) = &spec.agents.selector
        && let Ok(selector) = Selector::try_from(selector.clone())
    {
        agents = api.list(&ListParams::default().labels_from(&selector)).await?.items;
        if agents.is_empty() {
            selection.problems.push(Problem::new(
                "NoAgentsSelected",
                format!("spec.agents.selector ({selector}) matches no Agent in namespace {namespace}"),
            ));
        }
    }
    if let Some(collective) = &spec.agents.collective {
        let (target, target_missing) = find_agents(&api, std::iter::once(collective.target.as_str())).await?;
        selection.target = target.into_iter().next();
        missing.extend(target_missing);
    }
    if !missing.is_empty() {
        selection.problems.push(Problem::new(
            "AgentNotFound",
            format!("Agent(s) not found in namespace {namespace}: {}", missing.join(", ")),
        ));
    }
    let (with_sessions, without): (Vec<Agent>, Vec<Agent>) =
        agents.into_iter().partition(|agent| agent.spec.sessions.is_some());
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
            .extend(check_secret_key(ctx, namespace, secret_ref).await?);
    }
    if let Output::Git(git) = &spec.output
        && let Some(auth) = &git.auth_secret_ref
    {
        for key in crate::gitops::required_secret_keys(git) {
            let secret_ref = SecretKeyReference {
                name: auth.name.clone(),
                key: key.to_string(),
            };
            let problem = check_secret_key(ctx, namespace, &secret_ref).await?;
            selection.problems.extend(problem.map(|p| {
                Problem {
                    message: p
                        .message
                        .replace("spec.reflector.apiKeySecretRef", "spec.output.git.authSecretRef"),
                    ..p
                }
            }));
        }
    }
    Ok(selection)
}

async fn check_secret_key(ctx: &Context, namespace: &str, secret_ref: &SecretKeyReference) -> Result<Option<Problem>> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&secret_ref.name).await? else {
        return Ok(Some(Problem::new(
            "SecretNotFound",
            format!(
                "spec.reflector.apiKeySecretRef: Secret {namespace}/{} does not exist",
                secret_ref.name
            ),
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
                "spec.reflector.apiKeySecretRef: Secret {namespace}/{} has no key {:?}",
                secret_ref.name, secret_ref.key
            ),
        )
    }))
}
