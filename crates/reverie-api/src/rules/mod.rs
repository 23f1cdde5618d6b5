//! The pure rules of the three kinds: what makes a spec valid, and the `Accepted`/`Ready`
//! conditions that report it. The controllers, the `kubectl dream` plugin and the tests share
//! them, so a spec is judged the same way wherever it is read.

pub mod agent;
pub mod dream_schedule;
pub mod memory_proposal;

/// One reason a spec cannot be accepted, in words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase cause, used as the condition and event reason.
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Folds a list of problems into the reason (the first problem's) and one message naming all.
pub fn summarize(problems: &[Problem]) -> Option<(&'static str, String)> {
    let first = problems.first()?;
    let message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some((first.reason, message))
}

/// `Accepted` (the spec on its own) and `Ready` (the spec and everything it refers to).
pub fn acceptance_conditions(
    spec_problems: &[Problem],
    reference_problems: &[Problem],
    valid_message: &str,
    ready_message: &str,
) -> Vec<crate::conditions::DesiredCondition> {
    use crate::conditions::{ACCEPTED, DesiredCondition, READY};
    let accepted = match summarize(spec_problems) {
        None => DesiredCondition::true_(ACCEPTED, "Valid", valid_message),
        Some((reason, message)) => DesiredCondition::false_(ACCEPTED, reason, message),
    };
    let all: Vec<Problem> = spec_problems.iter().chain(reference_problems).cloned().collect();
    let ready = match summarize(&all) {
        None => DesiredCondition::true_(READY, "Reconciled", ready_message),
        Some((reason, message)) => DesiredCondition::false_(READY, reason, message),
    };
    vec![accepted, ready]
}
