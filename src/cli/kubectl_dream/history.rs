//! `kubectl dream history AGENT`: the agent's memory revisions: what its status records as
//! applied (`status.history`) together with the revisions still kept as ConfigMaps
//! `<agent>-memory-r<N>` (the ones `rollback` can restore), marking the current one.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use super::{Output, Session, api_error, format_table, serialize, short_age};
use crate::api::dream_schedule::{AgentRun, LessonCounts};
use crate::api::effect::LessonEffect;
use crate::api::{Agent, DreamSchedule, MemoryProposal};
use crate::store::configmap::current_name;
use crate::store::{
    AGENT_LABEL, DIGEST_ANNOTATION, REVISION_ANNOTATION, REVISION_LABEL, TOKENS_ANNOTATION, UPDATE_ANNOTATION,
};

/// An agent's revisions, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<u64>,
    pub revisions: Vec<Revision>,
}

/// One memory revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: u64,
    pub current: bool,
    /// Whether its snapshot ConfigMap is still kept (it can be rolled back to).
    pub kept: bool,
    /// The proposal that produced it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The update that wrote it (`proposal/...`, `agent-spec/...`), from its snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// Its estimated size in tokens, from its snapshot (or the agent's status, when current).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

pub(super) async fn run(session: &Session, output: Output, agent_name: &str) -> Result<String, String> {
    let agents = Api::<Agent>::namespaced(session.client.clone(), &session.namespace);
    let agent = agents
        .get_opt(agent_name)
        .await
        .map_err(|e| api_error(&format!("cannot read agent {agent_name}"), &e))?
        .ok_or_else(|| format!("agent {agent_name} not found in namespace {}", session.namespace))?;
    let history = read_history(&session.client, &session.namespace, &agent).await?;
    match output {
        Output::Table => Ok(render_history(&history, Timestamp::now())),
        _ => serialize(&history, output),
    }
}

/// The agent's revisions: its status history joined with the snapshots kept in `namespace`.
pub async fn read_history(client: &kube::Client, namespace: &str, agent: &Agent) -> Result<History, String> {
    let agent_name = agent.name_any();
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    let snapshots = configmaps
        .list(&ListParams::default().labels(&format!("{AGENT_LABEL}={agent_name},{REVISION_LABEL}")))
        .await
        .map_err(|e| api_error(&format!("cannot list the memory revisions of agent {agent_name}"), &e))?
        .items;
    let current = match agent.status.as_ref().and_then(|s| s.memory.as_ref()) {
        Some(memory) => Some(memory.revision),
        None => configmaps
            .get_opt(&current_name(&agent_name))
            .await
            .map_err(|e| api_error(&format!("cannot read ConfigMap {}", current_name(&agent_name)), &e))?
            .and_then(|c| c.annotations().get(REVISION_ANNOTATION)?.parse().ok()),
    };
    Ok(build_history(agent, &snapshots, current))
}

/// The effect of an agent's lessons, as the newest proposal that measured them records it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectHistory {
    pub agent: String,
    /// The proposal whose pass measured it, and when that pass ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<Timestamp>,
    pub lessons: Vec<LessonEffect>,
    /// The agent's newest pass that measured its lessons, from the DreamSchedules' `lastRuns`:
    /// newer than `measuredBy` when that pass had nothing to propose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_pass: Option<LatestPass>,
}

/// A pass's lesson counts, as a DreamSchedule recorded them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestPass {
    pub schedule: String,
    pub job: String,
    pub time: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    pub lessons: LessonCounts,
}

pub(super) async fn run_effect(session: &Session, output: Output, agent_name: &str) -> Result<String, String> {
    let history = read_effect(&session.client, &session.namespace, agent_name).await?;
    match output {
        Output::Table => Ok(render_effect(&history, Timestamp::now())),
        _ => serialize(&history, output),
    }
}

/// The effect of the agent's lessons as recorded in `namespace`'s proposals and schedules.
pub async fn read_effect(client: &kube::Client, namespace: &str, agent_name: &str) -> Result<EffectHistory, String> {
    let proposals = Api::<MemoryProposal>::namespaced(client.clone(), namespace);
    let listed = proposals
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("cannot list MemoryProposals", &e))?
        .items;
    let schedules = Api::<DreamSchedule>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("cannot list DreamSchedules", &e))?
        .items;
    Ok(effect_history(agent_name, &listed, &schedules))
}

/// The effect of the agent's lessons from proposals and schedules already read.
pub fn effect_history(agent: &str, proposals: &[MemoryProposal], schedules: &[DreamSchedule]) -> EffectHistory {
    EffectHistory {
        latest_pass: latest_pass(agent, schedules),
        ..latest_effect(agent, proposals)
    }
}

/// The effects recorded by the agent's newest proposal that carries any.
pub fn latest_effect(agent: &str, proposals: &[MemoryProposal]) -> EffectHistory {
    let newest = proposals
        .iter()
        .filter(|p| p.spec.agent_ref.name == agent && !p.spec.effects.is_empty())
        .max_by_key(|p| (p.creation_timestamp().map(|t| t.0), p.name_any()));
    EffectHistory {
        agent: agent.to_string(),
        measured_by: newest.map(|p| p.name_any()),
        measured_at: newest.and_then(|p| p.creation_timestamp()).map(|t| t.0),
        lessons: newest.map(|p| p.spec.effects.clone()).unwrap_or_default(),
        latest_pass: None,
    }
}

/// The agent's newest run, across schedules, that counted its lessons.
pub fn latest_pass(agent: &str, schedules: &[DreamSchedule]) -> Option<LatestPass> {
    runs_of(agent, schedules)
        .filter_map(|(schedule, run)| {
            Some(LatestPass {
                schedule,
                job: run.job.clone(),
                time: run.time.0,
                proposal: run.proposal.clone(),
                lessons: run.lessons.clone()?,
            })
        })
        .max_by_key(|pass| pass.time)
}

/// The agent's runs the schedules recorded, each with its schedule's name.
pub fn runs_of<'a>(
    agent: &'a str,
    schedules: impl IntoIterator<Item = &'a DreamSchedule>,
) -> impl Iterator<Item = (String, &'a AgentRun)> {
    schedules
        .into_iter()
        .flat_map(|s| {
            s.status
                .iter()
                .flat_map(|status| &status.last_runs)
                .map(move |run| (s.name_any(), run))
        })
        .filter(move |(_, run)| run.agent == agent)
}

/// The same table `reverie effect` prints, with where the numbers come from.
pub fn render_effect(history: &EffectHistory, now: Timestamp) -> String {
    let latest = history.latest_pass.as_ref().map(|pass| {
        format!(
            "The latest pass that measured ({} of schedule {}, {} ago) found {}.\n",
            pass.job,
            pass.schedule,
            short_age(pass.time, now),
            pass.lessons
        )
    });
    let Some(proposal) = &history.measured_by else {
        return format!(
            "{}No proposal of agent {} carries the effect of its lessons yet: a pass records it in \
             the proposal it creates, once the memory holds lessons learned from sessions.\n",
            latest.unwrap_or_default(),
            history.agent
        );
    };
    let age = history.measured_at.map(|t| short_age(t, now)).unwrap_or_default();
    let rows: Vec<_> = history.lessons.iter().map(LessonEffect::row).collect();
    let mut out = String::new();
    // A later pass that proposed nothing: its counts are newer than the numbers below.
    if let Some(pass) = &history.latest_pass
        && pass.proposal.as_deref() != Some(proposal)
        && history.measured_at.is_none_or(|at| pass.time > at)
    {
        out.push_str(&latest.unwrap_or_default());
        out.push_str("It proposed nothing, so the per-lesson numbers below are older:\n");
    }
    let _ = writeln!(out, "Measured by the dream pass of proposal {proposal} ({age} ago).\n");
    out.push_str(&crate::dream::effect::render_table(&rows));
    out.push('\n');
    for lesson in &history.lessons {
        let _ = writeln!(out, "- {}: {}", lesson.id, lesson.summary);
    }
    out
}

/// The proposal named in an update id `proposal/<name>[/<digest>]`.
fn proposal_of_update(update: &str) -> Option<String> {
    let rest = update.strip_prefix("proposal/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Joins the status history and the kept snapshots by revision, newest first.
pub fn build_history(agent: &Agent, snapshots: &[ConfigMap], current: Option<u64>) -> History {
    let mut revisions: BTreeMap<u64, Revision> = BTreeMap::new();
    for record in agent.status.iter().flat_map(|s| s.history.iter()) {
        revisions.insert(
            record.revision,
            Revision {
                revision: record.revision,
                proposal: record.proposal.clone(),
                approved_by: record.approved_by.clone(),
                time: Some(record.time.0),
                digest: Some(record.digest.clone()).filter(|d| !d.is_empty()),
                ..Revision::default()
            },
        );
    }
    for snapshot in snapshots {
        let annotations = snapshot.annotations();
        let revision = annotations
            .get(REVISION_ANNOTATION)
            .or_else(|| snapshot.labels().get(REVISION_LABEL))
            .and_then(|r| r.parse::<u64>().ok());
        let Some(revision) = revision else { continue };
        let row = revisions.entry(revision).or_insert_with(|| Revision {
            revision,
            ..Revision::default()
        });
        row.kept = true;
        let update = annotations.get(UPDATE_ANNOTATION).filter(|u| !u.is_empty()).cloned();
        if row.proposal.is_none() {
            row.proposal = update.as_deref().and_then(proposal_of_update);
        }
        row.update = update;
        row.tokens = annotations.get(TOKENS_ANNOTATION).and_then(|t| t.parse().ok());
        if row.digest.is_none() {
            row.digest = annotations.get(DIGEST_ANNOTATION).cloned();
        }
        if row.time.is_none() {
            row.time = snapshot.metadata.creation_timestamp.as_ref().map(|t| t.0);
        }
    }
    if let Some(current) = current {
        revisions.entry(current).or_insert_with(|| Revision {
            revision: current,
            digest: agent
                .status
                .as_ref()
                .and_then(|s| s.memory.as_ref())
                .filter(|m| m.revision == current)
                .map(|m| m.digest.clone()),
            ..Revision::default()
        });
        if let Some(row) = revisions.get_mut(&current) {
            row.current = true;
            let loaded = agent.status.as_ref().and_then(|s| s.memory.as_ref());
            if let Some(memory) = loaded.filter(|m| m.revision == current) {
                row.tokens = row.tokens.or(Some(memory.tokens));
            }
        }
    }
    History {
        agent: agent.name_any(),
        current_revision: current,
        revisions: revisions.into_values().rev().collect(),
    }
}

/// Where a revision came from, for the table.
fn source(row: &Revision) -> String {
    match (&row.proposal, row.update.as_deref()) {
        (Some(proposal), _) => proposal.clone(),
        (None, Some(update)) if update.starts_with("agent-spec/") => "(agent spec)".to_string(),
        (None, Some(update)) => update.to_string(),
        (None, None) => "-".to_string(),
    }
}

/// `sha256:0123456789ab` (enough to tell revisions apart in a table).
pub fn short_digest(digest: &str) -> String {
    let (prefix, hex) = digest.split_once(':').unwrap_or(("", digest));
    let short: String = hex.chars().take(12).collect();
    if prefix.is_empty() {
        short
    } else {
        format!("{prefix}:{short}")
    }
}

/// The history table: CURRENT (`*`), REVISION, PROPOSAL, APPROVED BY, AGE, KEPT, DIGEST.
pub fn render_history(history: &History, now: Timestamp) -> String {
    if history.revisions.is_empty() {
        return format!("Agent {} has no memory revisions yet.\n", history.agent);
    }
    let mut rows = vec![
        [
            "CURRENT",
            "REVISION",
            "PROPOSAL",
            "APPROVED BY",
            "AGE",
            "KEPT",
            "DIGEST",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for row in &history.revisions {
        rows.push(vec![
            if row.current { "*" } else { "" }.to_string(),
            row.revision.to_string(),
            source(row),
            row.approved_by.clone().unwrap_or_else(|| "-".to_string()),
            row.time.map_or_else(|| "-".to_string(), |t| short_age(t, now)),
            if row.kept { "yes" } else { "no" }.to_string(),
            row.digest.as_deref().map_or_else(|| "-".to_string(), short_digest),
        ]);
    }
    format_table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_ids_name_their_proposal() {
        assert_eq!(
            proposal_of_update("proposal/support-7/sha256:ab").as_deref(),
            Some("support-7")
        );
        assert_eq!(proposal_of_update("proposal/support-7").as_deref(), Some("support-7"));
        assert_eq!(proposal_of_update("agent-spec/abcd"), None);
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
    }

    fn proposal(name: &str, agent: &str, created: &str, effects: serde_json::Value) -> MemoryProposal {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": name, "namespace": "team", "creationTimestamp": created},
            "spec": {"agentRef": {"name": agent}, "baseRevision": 3, "baseDigest": "sha256:ab",
                     "summary": "s", "changes": [], "effects": effects}
        }))
        .unwrap()
    }

    fn effect(id: &str, verdict: &str) -> serde_json::Value {
        serde_json::json!({"id": id, "text": format!("lesson {id}"), "adoptedRevision": 2,
            "adopted": "2026-11-20T10:00:00Z",
            "before": {"sessions": 40, "occurrences": 16}, "after": {"sessions": 20, "occurrences": 1},
            "rateChange": {"difference": "-0.3500", "low": "-0.5000", "high": "-0.1900"},
            "verdict": verdict, "summary": "cut its mistake from 40% to 5% of sessions"})
    }

    #[test]
    fn the_effect_is_read_from_the_agents_newest_proposal_that_measured_it() {
        let proposals = vec![
            proposal(
                "old",
                "support",
                "2026-11-21T00:00:00Z",
                serde_json::json!([effect("l-1", "too-early")]),
            ),
            proposal(
                "new",
                "support",
                "2026-11-28T00:00:00Z",
                serde_json::json!([effect("l-1", "effective")]),
            ),
            // Newer, but measured nothing (a rollback) or is another agent's.
            proposal("rollback", "support", "2026-11-29T00:00:00Z", serde_json::json!([])),
            proposal(
                "other",
                "sales",
                "2026-11-30T00:00:00Z",
                serde_json::json!([effect("l-9", "regressed")]),
            ),
        ];
        let history = latest_effect("support", &proposals);
        assert_eq!(history.measured_by.as_deref(), Some("new"));
        let table = render_effect(&history, "2026-11-30T00:00:00Z".parse().unwrap());
        assert!(
            table.starts_with("Measured by the dream pass of proposal new (2d ago)."),
            "{table}"
        );
        assert!(
            table.contains("lesson l-1  r2 2026-11-20  40% of 40 → 5% of 20"),
            "{table}"
        );
        assert!(table.contains("effective"), "{table}");
        let none = latest_effect("billing", &proposals);
        assert!(render_effect(&none, Timestamp::now()).starts_with("No proposal of agent billing"));

        // A later pass that proposed nothing is said first: its counts are the newest.
        let schedule: DreamSchedule = serde_json::from_value(serde_json::json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
            "metadata": {"name": "nightly", "namespace": "team"},
            "spec": {"schedule": "0 3 * * *", "agents": {"names": ["support"]}},
            "status": {"lastRuns": [
                {"agent": "support", "job": "nightly-support-9", "result": "Succeeded",
                 "time": "2026-11-29T12:00:00Z",
                 "lessons": {"effective": 1, "noEffect": 0, "regressed": 0, "tooEarly": 0}},
                {"agent": "sales", "job": "nightly-sales-9", "result": "Succeeded", "time": "2026-11-29T13:00:00Z"}]}
        }))
        .unwrap();
        let mut history = latest_effect("support", &proposals);
        history.latest_pass = latest_pass("support", &[schedule]);
        let table = render_effect(&history, "2026-11-30T00:00:00Z".parse().unwrap());
        assert!(
            table.starts_with(
                "The latest pass that measured (nightly-support-9 of schedule nightly, 12h ago) found 1 effective, \
                 0 no-effect, 0 regressed, 0 too-early.\nIt proposed nothing, so the per-lesson numbers below are older:\n\
                 Measured by the dream pass of proposal new (2d ago)."
            ),
            "{table}"
        );
    }
}
