//! Plan: from a schedule, its validation and what dereference read, everything the reconcile
//! will do: the Jobs to delete and create, the status to write, and the events and metrics to
//! emit once that status has landed. Pure: the same inputs give the same plan.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::dereference::{Observed, Selection};
use super::runs::{self, record_run, run};
use super::validate::ValidSchedule;
use super::{FAILED, RUNNING, SKIPPED, SUCCEEDED};
use crate::api::dream_job::{DREAM_NOW_ANNOTATION, LessonCounts, RunReport};
use crate::api::dream_schedule::{ConcurrencyPolicy, DreamScheduleStatus};
use crate::api::rules::{Problem, acceptance_conditions};
use crate::api::{Agent, DreamSchedule, conditions};
use crate::controller::Result;
use crate::controller::dream_job::{self, JobState, PassPlan, Trigger};
use crate::schedule::Due;

/// Who an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum About {
    Schedule,
    /// An agent the schedule dreams for, by name (suspected injections go where its owner looks).
    Agent(String),
}

/// Something to tell the world once the status write landed, so a retried reconcile never
/// tells it twice.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Event {
        about: About,
        type_: EventType,
        reason: &'static str,
        action: &'static str,
        note: String,
    },
    /// `reverie_dreams_started_total{trigger}`.
    DreamStarted(&'static str),
    /// `reverie_dreams_finished_total{result}`.
    DreamFinished(&'static str),
    /// `reverie_suspected_injections_total`.
    SuspectedInjection {
        agent: String,
        class: String,
        sessions: u32,
    },
    /// `reverie_lessons{verdict}`: the agent's lessons by measured effect.
    LessonEffects { agent: String, counts: LessonCounts },
}

/// What one reconcile does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Grant the dreamer its Role before creating Jobs (only when there are Jobs to create).
    pub grant_dreamer: bool,
    /// Jobs to delete, first: running passes a `Replace` start displaces, then history.
    pub delete: Vec<String>,
    /// Jobs to create.
    pub create: Vec<Job>,
    pub status: DreamScheduleStatus,
    pub effects: Vec<Effect>,
    /// When to look again: the next fire time.
    pub requeue_at: Option<Timestamp>,
}

/// The inputs of a plan.
pub struct Inputs<'a> {
    pub schedule: &'a DreamSchedule,
    /// The spec's problems, or what validation parsed.
    pub valid: Result<&'a ValidSchedule, &'a [Problem]>,
    pub observed: &'a Observed,
    /// Image of the dream Jobs.
    pub image: &'a str,
    pub now: Timestamp,
}

/// The plan for `inputs`. Fails only when a Job to start cannot be built (the schedule has no
/// uid to own it by).
pub fn plan(inputs: &Inputs<'_>) -> Result<Plan> {
    let schedule = inputs.schedule;
    let current = schedule.status.clone().unwrap_or_default();
    let mut plan = Plan {
        status: DreamScheduleStatus {
            observed_generation: schedule.metadata.generation,
            ..current.clone()
        },
        ..Plan::default()
    };
    let mut jobs = inputs.observed.jobs.clone();
    observe_runs(&mut plan, &jobs, &inputs.observed.messages, inputs.now);

    let due = inputs
        .valid
        .ok()
        .map(|valid| due_now(schedule, valid, &current, inputs.now));
    if let Some(due) = &due {
        plan.effects.extend(missed(schedule, due));
        let triggers = triggers(schedule, &current, due);
        let selection = &inputs.observed.selection;
        plan.grant_dreamer = !triggers.is_empty() && !selection.agents.is_empty();
        let pool: Vec<&Agent> = selection.agents.iter().collect();
        for trigger in &triggers {
            for pass in passes(schedule, selection, &pool) {
                start_pass(&mut plan, inputs, &pass, trigger, &mut jobs)?;
            }
            match trigger {
                Trigger::Scheduled(at) => plan.status.last_schedule_time = Some(Time(*at)),
                Trigger::Now(value) => plan.status.last_dream_now = Some(value.clone()),
            }
        }
    }
    let expired = runs::expired_jobs(
        &jobs,
        schedule.spec.successful_jobs_history_limit as usize,
        schedule.spec.failed_jobs_history_limit as usize,
    );
    jobs.retain(|job| !expired.contains(&job.name_any()));
    plan.delete.extend(expired);

    plan.status.active = jobs
        .iter()
        .filter(|job| dream_job::state(job) == JobState::Active)
        .map(runs::job_reference)
        .collect();
    plan.requeue_at = due.and_then(|d| d.next).filter(|_| !schedule.spec.suspend);
    plan.status.next_schedule_time = plan.requeue_at.map(Time);
    let spec_problems = inputs.valid.err().unwrap_or_default();
    let wanted = acceptance_conditions(
        spec_problems,
        &inputs.observed.selection.problems,
        "the schedule is valid",
        "the schedule and its agents are ready",
    );
    let now = Time(Timestamp::from_second(inputs.now.as_second()).unwrap_or(inputs.now));
    plan.status.conditions =
        conditions::merge_conditions(&current.conditions, &wanted, schedule.metadata.generation, &now);
    Ok(plan)
}

/// The passes one trigger starts: one per agent, or one collective pass.
fn passes<'a>(schedule: &DreamSchedule, selection: &'a Selection, pool: &'a [&'a Agent]) -> Vec<PassPlan<'a>> {
    match &selection.target {
        Some(target) => vec![PassPlan {
            target,
            pool,
            min_agents: schedule.spec.agents.collective.as_ref().map_or(1, |c| c.min_agents),
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

/// Brings `lastRuns` and `lastSuccessfulTime` up to date with the newest Job of each agent: a
/// Job status does not know yet is recorded (and announced) once.
fn observe_runs(
    plan: &mut Plan,
    jobs: &[Job],
    messages: &std::collections::BTreeMap<String, Option<String>>,
    now: Timestamp,
) {
    for (agent, job) in runs::newest_per_agent(jobs) {
        let state = dream_job::state(job);
        if state == JobState::Succeeded
            && let Some(finished) = dream_job::finished_at(job)
            && plan.status.last_successful_time.as_ref().is_none_or(|t| t.0 < finished)
        {
            plan.status.last_successful_time = Some(Time(finished));
        }
        if runs::is_recorded(&plan.status, agent, job) {
            continue;
        }
        match state {
            JobState::Active => {
                // A Job started by a reconcile whose status write did not land.
                let created = job.creation_timestamp().map_or(now, |t| t.0);
                record_run(&mut plan.status, run(agent, &job.name_any(), RUNNING, "", created));
            }
            JobState::Succeeded | JobState::Failed => {
                let message = messages.get(&job.name_any()).cloned().flatten();
                finished_run(plan, agent, job, state, message, now);
            }
        }
    }
}

/// Records a finished Job from its pod's report: a failure is a Warning event, suspected
/// injections are events on the agent and a metric.
fn finished_run(plan: &mut Plan, agent: &str, job: &Job, state: JobState, message: Option<String>, now: Timestamp) {
    let report = message.as_deref().and_then(RunReport::parse);
    let finished = dream_job::finished_at(job).unwrap_or(now);
    let result = if state == JobState::Succeeded {
        SUCCEEDED
    } else {
        FAILED
    };
    let mut entry = run(agent, &job.name_any(), result, "", finished);
    match report {
        Some(report) => {
            plan.effects.extend(injections(agent, &job.name_any(), &report));
            plan.effects.extend(lesson_effects(agent, &job.name_any(), &report));
            entry.proposal = report.proposal;
            entry.tokens = Some(report.tokens);
            entry.sessions_reviewed = Some(report.sessions_reviewed);
            entry.lessons = report.effects.map(|e| e.counts);
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
        entry.message.get_or_insert_with(|| why.clone());
        plan.effects.push(Effect::Event {
            about: About::Schedule,
            type_: EventType::Warning,
            reason: "DreamFailed",
            action: "Dream",
            note: format!(
                "dream Job {} for agent {agent} failed; memory is unchanged: {why}",
                job.name_any()
            ),
        });
    }
    plan.effects.push(Effect::DreamFinished(result));
    record_run(&mut plan.status, entry);
}

/// Suspected injections a pass refused: a Warning event on the Agent (what, how often, where to
/// look) and the metric, so an attack shows up where its owner looks.
fn injections(agent: &str, job: &str, report: &RunReport) -> Vec<Effect> {
    let found = &report.suspected_injections;
    if found.is_empty() {
        return Vec::new();
    }
    let mut effects: Vec<Effect> = found
        .iter()
        .map(|i| Effect::SuspectedInjection {
            agent: agent.to_string(),
            class: i.class.clone(),
            sessions: i.sessions,
        })
        .collect();
    let listed: Vec<String> = found
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
    effects.push(Effect::Event {
        about: About::Agent(agent.to_string()),
        type_: EventType::Warning,
        reason: "SuspectedInjection",
        action: "Dream",
        note: format!(
            "dream Job {job} refused {} suspected injection(s) found in this agent's transcripts; nothing of them was proposed: {}",
            found.len(),
            listed.join("; ")
        ),
    });
    effects
}

/// The measured effect of the agent's lessons: the gauges, and a Warning event on the Agent per
/// regressed lesson (its archive is proposed first in the pass's proposal).
fn lesson_effects(agent: &str, job: &str, report: &RunReport) -> Vec<Effect> {
    let Some(counts) = &report.effects else {
        return Vec::new();
    };
    let mut effects = vec![Effect::LessonEffects {
        agent: agent.to_string(),
        counts: counts.counts.clone(),
    }];
    let archive = match &report.proposal {
        Some(proposal) => format!("its archive is proposed in {proposal}"),
        None => "its archive could not be proposed (see the dream Job's log)".to_string(),
    };
    effects.extend(counts.regressed_lessons.iter().map(|lesson| Effect::Event {
        about: About::Agent(agent.to_string()),
        type_: EventType::Warning,
        reason: "LessonRegressed",
        action: "Dream",
        note: format!(
            "dream Job {job}: outcomes got worse after lesson {} was adopted; {archive}: {}",
            lesson.id, lesson.summary
        ),
    }));
    effects
}

/// Which fire time is due now: the most recent one not started yet (suspension skips them).
fn due_now(schedule: &DreamSchedule, valid: &ValidSchedule, status: &DreamScheduleStatus, now: Timestamp) -> Due {
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
        .map(|s| std::time::Duration::from_secs(s.max(0) as u64));
    valid.cron.due(since, now, deadline)
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

/// Warnings about fire times that will never run.
fn missed(schedule: &DreamSchedule, due: &Due) -> Vec<Effect> {
    let mut effects = Vec::new();
    if schedule.spec.suspend {
        return effects;
    }
    if due.too_many_missed {
        effects.push(Effect::Event {
            about: About::Schedule,
            type_: EventType::Warning,
            reason: "TooManyMissedTimes",
            action: "Schedule",
            note: format!(
                "more than {} fire times were missed (operator down or schedule suspended); only the most recent one starts. Set startingDeadlineSeconds to bound how late a pass may start",
                crate::schedule::MISSED_LIMIT
            ),
        });
    }
    if let Some(missed) = due.past_deadline {
        effects.push(Effect::Event {
            about: About::Schedule,
            type_: EventType::Warning,
            reason: "MissedStartingDeadline",
            action: "Schedule",
            note: format!(
                "the pass due at {missed} did not start within startingDeadlineSeconds ({}s); it is skipped",
                schedule.spec.starting_deadline_seconds.unwrap_or_default()
            ),
        });
    }
    effects
}

/// Plans one pass under the concurrency policy; `jobs` is what the schedule will have after
/// the plan, so a later trigger of the same reconcile sees this one's Job.
fn start_pass(
    plan: &mut Plan,
    inputs: &Inputs<'_>,
    pass: &PassPlan<'_>,
    trigger: &Trigger,
    jobs: &mut Vec<Job>,
) -> Result<()> {
    let schedule = inputs.schedule;
    let agent = pass.target.name_any();
    let job_name = trigger.job_name(&schedule.name_any(), &agent);
    if jobs.iter().any(|job| job.name_any() == job_name) {
        return Ok(());
    }
    let active: Vec<String> = jobs
        .iter()
        .filter(|job| dream_job::agent_of(job) == Some(agent.as_str()) && dream_job::state(job) == JobState::Active)
        .map(|job| job.name_any())
        .collect();
    match (schedule.spec.concurrency_policy, active.first()) {
        (ConcurrencyPolicy::Forbid, Some(running)) => {
            let message = format!("skipped: the previous pass {running} is still running (concurrencyPolicy Forbid)");
            record_run(&mut plan.status, run(&agent, running, SKIPPED, &message, inputs.now));
            plan.effects.push(Effect::Event {
                about: About::Schedule,
                type_: EventType::Normal,
                reason: "DreamSkipped",
                action: "StartDream",
                note: format!("{agent}: {message}"),
            });
            return Ok(());
        }
        (ConcurrencyPolicy::Replace, Some(_)) => {
            for running in &active {
                plan.delete.push(running.clone());
                plan.effects.push(Effect::Event {
                    about: About::Schedule,
                    type_: EventType::Normal,
                    reason: "DreamReplaced",
                    action: "StartDream",
                    note: format!(
                        "{agent}: deleted the running pass {running} to start {job_name} (concurrencyPolicy Replace)"
                    ),
                });
            }
            jobs.retain(|job| !active.contains(&job.name_any()));
        }
        _ => {}
    }
    let job = dream_job::build(schedule, pass, trigger, inputs.image)?;
    jobs.push(job.clone());
    plan.create.push(job);
    record_run(&mut plan.status, run(&agent, &job_name, RUNNING, "", inputs.now));
    let why = match trigger {
        Trigger::Scheduled(at) => format!("scheduled for {at}"),
        Trigger::Now(_) => format!("requested with {DREAM_NOW_ANNOTATION}"),
    };
    plan.effects.push(Effect::Event {
        about: About::Schedule,
        type_: EventType::Normal,
        reason: "DreamStarted",
        action: "StartDream",
        note: format!("started dream Job {job_name} for agent {agent} ({why})"),
    });
    plan.effects.push(Effect::DreamStarted(trigger_label(trigger)));
    Ok(())
}

/// The metric label of a trigger.
fn trigger_label(trigger: &Trigger) -> &'static str {
    match trigger {
        Trigger::Scheduled(_) => "schedule",
        Trigger::Now(_) => "dream-now",
    }
}
