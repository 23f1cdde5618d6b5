//! The run history in a DreamSchedule's status: one `lastRuns` entry per agent, which Jobs
//! status does not yet reflect, and which finished Jobs are past the history limits. Pure.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{FAILED, RUNNING, SKIPPED, SUCCEEDED};
use crate::api::dream_schedule::{AgentRun, DreamScheduleStatus};
use crate::controller::dream_job::{self, JobState};

/// A `lastRuns` entry.
pub fn run(agent: &str, job: &str, result: &str, message: &str, now: Timestamp) -> AgentRun {
    AgentRun {
        agent: agent.to_string(),
        job: job.to_string(),
        result: result.to_string(),
        proposal: None,
        tokens: None,
        sessions_reviewed: None,
        message: Some(message.to_string()).filter(|m| !m.is_empty()),
        lessons: None,
        time: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
    }
}

/// Replaces the agent's entry in `lastRuns` (kept sorted by agent).
pub fn record_run(status: &mut DreamScheduleStatus, run: AgentRun) {
    status.last_runs.retain(|r| r.agent != run.agent);
    status.last_runs.push(run);
    status.last_runs.sort_by(|a, b| a.agent.cmp(&b.agent));
}

/// The newest Job of each agent, by agent.
pub fn newest_per_agent(jobs: &[Job]) -> BTreeMap<&str, &Job> {
    let mut newest: BTreeMap<&str, &Job> = BTreeMap::new();
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
    newest
}

/// Whether `status` already records `job` (the newest of `agent`) in its current state.
pub fn is_recorded(status: &DreamScheduleStatus, agent: &str, job: &Job) -> bool {
    let Some(recorded) = status.last_runs.iter().find(|r| r.agent == agent) else {
        return false;
    };
    if recorded.job != job.name_any() {
        return false;
    }
    match dream_job::state(job) {
        JobState::Active => recorded.result == RUNNING || recorded.result == SKIPPED,
        JobState::Succeeded | JobState::Failed => recorded.result == SUCCEEDED || recorded.result == FAILED,
    }
}

/// Finished Jobs whose outcome status does not record yet: their pods' reports are read.
pub fn unrecorded_finished<'a>(jobs: &'a [Job], status: &DreamScheduleStatus) -> Vec<&'a Job> {
    newest_per_agent(jobs)
        .into_iter()
        .filter(|(agent, job)| dream_job::state(job) != JobState::Active && !is_recorded(status, agent, job))
        .map(|(_, job)| job)
        .collect()
}

/// A reference to a Job, for `status.active`.
pub fn job_reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Names of finished Jobs past the history limits: the newest `keep_succeeded` succeeded and
/// `keep_failed` failed Jobs of each agent are kept.
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
    let mut seen: HashMap<(&str, u8), usize> = HashMap::new();
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
