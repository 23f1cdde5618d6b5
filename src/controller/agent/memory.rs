//! Memory: brings the Agent's memory store to a revision holding its current spec.

use kube::ResourceExt;

use crate::api::Agent;
use crate::controller::{Context, Result};
use crate::store::{Committed, RevisionInfo, RevisionStore, StoreError, Update, spec_hash};

/// Where the memory stands after the memory step.
pub enum MemoryState {
    /// The current revision matches the spec.
    Ready(RevisionInfo),
    /// A revision is being written by an apply Job (PVC store).
    Applying { job: String, current: Option<RevisionInfo> },
    /// The memory could not be brought in line with the spec.
    Failed {
        error: StoreError,
        current: Option<RevisionInfo>,
    },
    /// Not attempted (the spec is invalid).
    Skipped,
}

/// Brings the memory in line with the spec: revision 1 holding the instructions for a new
/// agent, a new revision when the instructions or protected sections change.
pub async fn ensure(ctx: &Context, agent: &Agent) -> Result<MemoryState> {
    let store = ctx.store_for(agent)?;
    let wanted = spec_hash(&agent.spec.instructions, &agent.spec.memory.protected_sections);
    let current = match store.current().await {
        Ok(current) => current,
        Err(StoreError::Kube(e)) => return Err(e.into()),
        Err(error) => return Ok(MemoryState::Failed { error, current: None }),
    };
    if let Some(info) = &current
        && info.spec == wanted
    {
        return Ok(MemoryState::Ready(info.clone()));
    }
    let update = Update {
        id: format!("agent-spec/{wanted}"),
        agent: agent.name_any(),
        base_revision: current.as_ref().map_or(0, |c| c.revision),
        base_digest: current.as_ref().map(|c| c.digest.clone()),
        proposal: None,
        instructions: agent.spec.instructions.clone(),
        protected: agent.spec.memory.protected_sections.clone(),
        changes: Vec::new(),
        history_limit: agent.spec.memory.revision_history_limit,
        now: ctx.clock.now(),
    };
    match store.commit(&update).await {
        Ok(Committed::Done(info)) => Ok(MemoryState::Ready(info)),
        Ok(Committed::InProgress { job }) => Ok(MemoryState::Applying { job, current }),
        Err(StoreError::Kube(e)) => Err(e.into()),
        Err(error) => Ok(MemoryState::Failed { error, current }),
    }
}
