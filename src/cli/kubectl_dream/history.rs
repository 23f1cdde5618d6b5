//! `kubectl dream history AGENT`: the agent's memory revisions: what its status records as
//! applied (`status.history`) together with the revisions still kept as ConfigMaps
//! `<agent>-memory-r<N>` (the ones `rollback` can restore), marking the current one.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use super::{Output, Session, api_error, format_table, serialize, short_age};
use crate::api::Agent;
use crate::store::configmap::current_name;
use crate::store::{AGENT_LABEL, DIGEST_ANNOTATION, REVISION_ANNOTATION, REVISION_LABEL, UPDATE_ANNOTATION};

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
}

pub(super) async fn run(session: &Session, output: Output, agent_name: &str) -> Result<String, String> {
    let agents = Api::<Agent>::namespaced(session.client.clone(), &session.namespace);
    let agent = agents
        .get_opt(agent_name)
        .await
        .map_err(|e| api_error(&format!("cannot read agent {agent_name}"), &e))?
        .ok_or_else(|| format!("agent {agent_name} not found in namespace {}", session.namespace))?;
    let configmaps = Api::<ConfigMap>::namespaced(session.client.clone(), &session.namespace);
    let snapshots = configmaps
        .list(&ListParams::default().labels(&format!("{AGENT_LABEL}={agent_name},{REVISION_LABEL}")))
        .await
        .map_err(|e| api_error(&format!("cannot list the memory revisions of agent {agent_name}"), &e))?
        .items;
    let current = match agent.status.as_ref().and_then(|s| s.memory.as_ref()) {
        Some(memory) => Some(memory.revision),
        None => configmaps
            .get_opt(&current_name(agent_name))
            .await
            .map_err(|e| api_error(&format!("cannot read ConfigMap {}", current_name(agent_name)), &e))?
            .and_then(|c| c.annotations().get(REVISION_ANNOTATION)?.parse().ok()),
    };
    let history = build_history(&agent, &snapshots, current);
    match output {
        Output::Table => Ok(render_history(&history, Timestamp::now())),
        _ => serialize(&history, output),
    }
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
fn short_digest(digest: &str) -> String {
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
}
