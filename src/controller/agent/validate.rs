//! Validate: the Agent's spec on its own (`Accepted`) and what it refers to (`Ready`).

use kube::ResourceExt;

use super::dereference::Observed;
use crate::api::Agent;
use crate::api::rules::Problem;
use crate::api::rules::agent::{missing_shared_problem, validate as validate_spec};

/// What is wrong with an Agent, split as its conditions report it.
pub struct Problems {
    /// The spec on its own: while there are any, the memory is not written.
    pub spec: Vec<Problem>,
    /// Agents it shares memory with that do not exist: the runtime waits for them.
    pub references: Vec<Problem>,
}

pub fn validate(agent: &Agent, observed: &Observed) -> Problems {
    Problems {
        spec: validate_spec(&agent.name_any(), &agent.spec),
        references: missing_shared_problem(&observed.missing_shared),
    }
}
