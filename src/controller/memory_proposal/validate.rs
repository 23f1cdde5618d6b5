//! Validate: the change list against the kind's rules (and the agent's protected sections),
//! and whether the agent it is for exists.

use kube::ResourceExt;

use super::dereference::Observed;
use crate::api::MemoryProposal;
use crate::api::rules::Problem;
use crate::api::rules::memory_proposal::validate as validate_spec;

/// What is wrong with a proposal, split as the `Accepted` and `Ready` conditions report it.
pub struct Problems {
    /// The proposal on its own (`Accepted`).
    pub spec: Vec<Problem>,
    /// What it refers to (`Ready`).
    pub references: Vec<Problem>,
}

pub fn validate(proposal: &MemoryProposal, observed: &Observed) -> Problems {
    let protected = observed
        .agent
        .as_ref()
        .map(|agent| agent.spec.memory.protected_sections.as_slice())
        .unwrap_or_default();
    let references = match observed.agent {
        Some(_) => Vec::new(),
        None => vec![Problem::new(
            "AgentNotFound",
            format!(
                "spec.agentRef: Agent {}/{} does not exist",
                proposal.namespace().unwrap_or_default(),
                proposal.spec.agent_ref.name
            ),
        )],
    };
    Problems {
        spec: validate_spec(&proposal.spec, protected),
        references,
    }
}
