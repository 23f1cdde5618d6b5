//! Dereference: what an Agent refers to, read from the caches: the agents whose memory it
//! shares, and its proposals (how many wait for a decision, and which revisions they made).

use std::sync::Arc;

use kube::ResourceExt;

use crate::api::agent::RevisionRecord;
use crate::api::memory_proposal::Phase;
use crate::api::{Agent, MemoryProposal};
use crate::controller::Caches;

/// Everything a reconcile reads before it acts.
pub struct Observed {
    /// The agents of `spec.memory.shared` that exist.
    pub shared: Vec<Agent>,
    /// The names in `spec.memory.shared` that do not.
    pub missing_shared: Vec<String>,
    /// Proposals still waiting for a decision.
    pub pending_proposals: u32,
    /// Revisions applied from proposals, newest first.
    pub history: Vec<RevisionRecord>,
}

pub fn dereference(caches: &Caches, agent: &Agent) -> Observed {
    let namespace = agent.namespace().unwrap_or_default();
    let names = agent.spec.memory.shared.iter().map(|s| s.agent_ref.name.as_str());
    let (shared, missing_shared) = caches.find_agents(&namespace, names);
    let proposals = caches.proposals_for(&namespace, &agent.name_any());
    let (pending_proposals, history) = proposal_summary(&proposals, agent.spec.memory.revision_history_limit);
    Observed {
        shared: shared.iter().map(|a| Agent::clone(a)).collect(),
        missing_shared,
        pending_proposals,
        history,
    }
}

/// Of an agent's proposals: how many still wait for a decision, and the revisions applied from
/// them (newest first, at most `limit`, as many as revisions are kept).
fn proposal_summary(proposals: &[Arc<MemoryProposal>], limit: u32) -> (u32, Vec<RevisionRecord>) {
    let phase = |p: &MemoryProposal| p.status.as_ref().and_then(|s| s.phase);
    let pending = proposals
        .iter()
        .filter(|p| phase(p).is_none_or(|phase| phase == Phase::Pending))
        .count();
    let mut history: Vec<RevisionRecord> = proposals
        .iter()
        .filter(|p| phase(p) == Some(Phase::Applied))
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            Some(RevisionRecord {
                revision: status.applied_revision?,
                proposal: Some(p.name_any()),
                approved_by: status.approved_by.clone(),
                time: status.applied_at.clone()?,
                digest: status.applied_digest.clone().unwrap_or_default(),
            })
        })
        .collect();
    history.sort_by_key(|record| std::cmp::Reverse(record.revision));
    history.truncate(limit as usize);
    (u32::try_from(pending).unwrap_or(u32::MAX), history)
}
