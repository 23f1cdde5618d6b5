//! Dereference: what a proposal points at, read from the caches: its agent, and a newer
//! proposal whose `source.supersedes` names it.

use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{Agent, MemoryProposal};
use crate::controller::Caches;

/// Everything a reconcile reads before it plans.
pub struct Observed {
    /// The agent the proposal is for; `None` when it does not exist.
    pub agent: Option<Arc<Agent>>,
    /// The name of the proposal that replaced this one, if any.
    pub superseded_by: Option<String>,
}

pub fn dereference(caches: &Caches, proposal: &MemoryProposal) -> Observed {
    let namespace = proposal.namespace().unwrap_or_default();
    Observed {
        agent: caches.agent(&namespace, &proposal.spec.agent_ref.name),
        superseded_by: caches
            .superseding(&namespace, &proposal.name_any())
            .map(|newer| newer.name_any()),
    }
}
