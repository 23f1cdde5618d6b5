//! Status: the status an Agent's spec, references, memory and runtime come to. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::dereference::Observed;
use super::memory::MemoryState;
use super::validate::Problems;
use crate::api::Agent;
use crate::api::agent::{AgentStatus, MemoryStatus};
use crate::api::conditions::{self, DesiredCondition, MEMORY_READY, READY, RUNTIME_READY};
use crate::api::rules::acceptance_conditions;

fn memory_condition(memory: &MemoryState) -> DesiredCondition {
    match memory {
        MemoryState::Ready(info) => DesiredCondition::true_(
            MEMORY_READY,
            "RevisionCurrent",
            format!(
                "memory revision {} ({} entries, ~{} tokens) holds the current spec",
                info.revision, info.entries, info.tokens
            ),
        ),
        MemoryState::Applying { job, .. } => DesiredCondition::false_(
            MEMORY_READY,
            "Applying",
            format!("apply Job {job} is writing the next memory revision"),
        ),
        MemoryState::Failed { error, .. } => DesiredCondition::false_(MEMORY_READY, error.reason(), error.to_string()),
        MemoryState::Skipped => DesiredCondition::false_(
            MEMORY_READY,
            "InvalidSpec",
            "the memory is not written while the spec is invalid",
        ),
    }
}

fn runtime_condition(agent: &Agent, runtime: Option<&(bool, String)>) -> DesiredCondition {
    match (agent.spec.runtime.is_some(), runtime) {
        (false, _) => DesiredCondition::true_(
            RUNTIME_READY,
            "NotManaged",
            "the agent runs outside reverie; only its memory is managed",
        ),
        (true, Some((true, message))) => DesiredCondition::true_(RUNTIME_READY, "Available", message.clone()),
        (true, Some((false, message))) => DesiredCondition::false_(RUNTIME_READY, "RollingOut", message.clone()),
        (true, None) => DesiredCondition::false_(
            RUNTIME_READY,
            "WaitingForMemory",
            "the Deployment starts once the memory is ready",
        ),
    }
}

/// The status an agent should have: `Accepted` (the spec on its own), `MemoryReady`,
/// `RuntimeReady`, and `Ready` (all of it, and every agent it refers to exists).
pub fn desired(
    agent: &Agent,
    problems: &Problems,
    observed: &Observed,
    memory: &MemoryState,
    runtime: Option<&(bool, String)>,
    now: &Time,
) -> AgentStatus {
    let current = agent.status.clone().unwrap_or_default();
    let mut wanted = acceptance_conditions(
        &problems.spec,
        &problems.references,
        "the agent spec is valid",
        "the agent's memory and runtime are ready",
    );
    let memory_condition = memory_condition(memory);
    let runtime_condition = runtime_condition(agent, runtime);
    if let Some(ready) = wanted.iter_mut().find(|c| c.type_ == READY)
        && ready.status
    {
        for part in [&memory_condition, &runtime_condition] {
            if !part.status {
                *ready = DesiredCondition::false_(READY, part.reason.clone(), part.message.clone());
                break;
            }
        }
    }
    wanted.push(memory_condition);
    wanted.push(runtime_condition);
    let info = match memory {
        MemoryState::Ready(info) => Some(info),
        MemoryState::Applying { current, .. } | MemoryState::Failed { current, .. } => current.as_ref(),
        MemoryState::Skipped => None,
    };
    let memory_status = match info {
        Some(info) => Some(MemoryStatus {
            revision: info.revision,
            digest: info.digest.clone(),
            tokens: info.tokens,
            bytes: info.bytes,
            entries: info.entries,
            updated: match &current.memory {
                Some(previous) if previous.revision == info.revision => previous.updated.clone(),
                _ => Some(now.clone()),
            },
        }),
        None => current.memory.clone(),
    };
    AgentStatus {
        observed_generation: agent.metadata.generation,
        conditions: conditions::merge_conditions(&current.conditions, &wanted, agent.metadata.generation, now),
        memory: memory_status,
        pending_proposals: Some(observed.pending_proposals),
        history: observed.history.clone(),
        ..current
    }
}

#[cfg(test)]
mod tests {
    //! The status step as a table: what the other steps came to in, conditions out.

    use serde_json::{Value, json};

    use super::*;
    use crate::api::rules::Problem;
    use crate::store::RevisionInfo;

    fn agent(spec: Value) -> Agent {
        serde_json::from_value(json!({"apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "support", "namespace": "team", "generation": 3}, "spec": spec}))
        .unwrap()
    }

    fn revision(revision: u64) -> RevisionInfo {
        RevisionInfo {
            revision,
            digest: "sha256:aa".into(),
            tokens: 120,
            bytes: 480,
            entries: 4,
            update: String::new(),
            spec: String::new(),
        }
    }

    fn observed() -> Observed {
        Observed {
            shared: Vec::new(),
            missing_shared: Vec::new(),
            pending_proposals: 2,
            history: Vec::new(),
        }
    }

    fn problems(spec: Vec<Problem>, references: Vec<Problem>) -> Problems {
        Problems { spec, references }
    }

    /// The `(status, reason)` of condition `type_`.
    fn condition(status: &AgentStatus, type_: &str) -> (String, String) {
        let found = conditions::find(&status.conditions, type_).expect("condition present");
        (found.status.clone(), found.reason.clone())
    }

    #[test]
    fn ready_says_what_holds_the_agent_back() {
        let now = Time("2026-11-20T12:00:00Z".parse().unwrap());
        let plain = agent(json!({"model": "m", "instructions": "x"}));
        let managed = agent(json!({"model": "m", "instructions": "x", "runtime": {"image": "agent:1"}}));
        let rolling = (false, "1 of 2 replicas updated".to_string());
        let no_problems = problems(Vec::new(), Vec::new());
        let bad_spec = problems(vec![Problem::new("InvalidSectionName", "bad")], Vec::new());
        let missing = problems(Vec::new(), vec![Problem::new("SharedAgentNotFound", "gone")]);
        let applying = MemoryState::Applying {
            job: "apply-1".into(),
            current: Some(revision(1)),
        };
        let cases = [
            (
                "ready",
                &plain,
                &no_problems,
                MemoryState::Ready(revision(2)),
                None,
                ("True", "Reconciled"),
            ),
            (
                "invalid spec",
                &plain,
                &bad_spec,
                MemoryState::Skipped,
                None,
                ("False", "InvalidSectionName"),
            ),
            (
                "missing shared agent",
                &plain,
                &missing,
                MemoryState::Ready(revision(2)),
                None,
                ("False", "SharedAgentNotFound"),
            ),
            (
                "memory being written",
                &plain,
                &no_problems,
                applying,
                None,
                ("False", "Applying"),
            ),
            (
                "runtime rolling out",
                &managed,
                &no_problems,
                MemoryState::Ready(revision(2)),
                Some(&rolling),
                ("False", "RollingOut"),
            ),
        ];
        for (name, agent, problems, memory, runtime, (ready, reason)) in cases {
            let status = desired(agent, problems, &observed(), &memory, runtime, &now);
            assert_eq!(
                condition(&status, READY),
                (ready.to_string(), reason.to_string()),
                "{name}"
            );
            assert_eq!(status.pending_proposals, Some(2), "{name}");
            assert_eq!(status.observed_generation, Some(3), "{name}");
        }
    }

    #[test]
    fn memory_status_keeps_the_revision_being_replaced_while_an_apply_job_runs() {
        let now = Time("2026-11-20T12:00:00Z".parse().unwrap());
        let applying = MemoryState::Applying {
            job: "apply-1".into(),
            current: Some(revision(1)),
        };
        let status = desired(
            &agent(json!({"model": "m", "instructions": "x"})),
            &problems(Vec::new(), Vec::new()),
            &observed(),
            &applying,
            None,
            &now,
        );
        assert_eq!(status.memory.as_ref().map(|m| m.revision), Some(1));
        assert_eq!(condition(&status, MEMORY_READY).1, "Applying");
    }
}
