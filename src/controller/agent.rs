//! Agent reconciler: dereference shared memories → validate → build status → update status.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::status::apply_status;
use super::{Context, Problem, Result, acceptance_conditions, instrumented, publish_event};
use crate::api::agent::{AgentSpec, AgentStatus};
use crate::api::conditions::{self, ACCEPTED};
use crate::api::{Agent, duration};

pub const CONTROLLER: &str = "agent";

pub async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_agent(&agent, &ctx)).await
}

async fn reconcile_agent(agent: &Agent, ctx: &Context) -> Result<Action> {
    let namespace = agent.namespace().unwrap_or_default();
    let api = Api::<Agent>::namespaced(ctx.client.clone(), &namespace);

    let spec_problems = validate(&agent.name_any(), &agent.spec);
    let missing_shared =
        missing_agents(&api, agent.spec.memory.shared.iter().map(|s| s.agent_ref.name.as_str())).await?;
    let reference_problems = missing_shared_problem(&missing_shared);
    let desired = desired_status(agent, &spec_problems, &reference_problems, &ctx.now());
    report_acceptance_change(
        ctx,
        agent,
        agent.status.as_ref().map(|s| s.conditions.as_slice()),
        &desired.conditions,
    )
    .await;
    apply_status(&api, agent, agent.status.as_ref(), &desired).await?;
    Ok(Action::await_change())
}

/// Names among `names` that no Agent in the namespace carries.
pub(crate) async fn missing_agents<'a>(api: &Api<Agent>, names: impl Iterator<Item = &'a str>) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for name in names {
        if api.get_opt(name).await?.is_none() {
            missing.push(name.to_string());
        }
    }
    Ok(missing)
}

/// Section names are lowercase identifiers so they render as stable Markdown headings.
pub fn is_valid_section_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Everything wrong with an agent's spec on its own (empty when it is valid).
pub fn validate(name: &str, spec: &AgentSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    for section in &spec.memory.protected_sections {
        if !is_valid_section_name(section) {
            problems.push(Problem::new(
                "InvalidSectionName",
                format!("spec.memory.protectedSections: {section:?} is not a section name (lowercase letters, digits and '-', starting with a letter)"),
            ));
        }
    }
    if let Err(e) = duration::parse(&spec.dreaming.approval_timeout) {
        problems.push(Problem::new(
            "InvalidDuration",
            format!("spec.dreaming.approvalTimeout: {e}"),
        ));
    }
    if let Some(sessions) = &spec.sessions
        && sessions.source_count() != 1
    {
        problems.push(Problem::new(
            "InvalidSessionsVolume",
            "spec.sessions: set exactly one of persistentVolumeClaim, nfs or hostPath",
        ));
    }
    if spec.memory.shared.iter().any(|s| s.agent_ref.name == name) {
        problems.push(Problem::new(
            "InvalidSharedMemory",
            "spec.memory.shared: an agent cannot share its own memory with itself",
        ));
    }
    problems
}

fn missing_shared_problem(missing: &[String]) -> Vec<Problem> {
    if missing.is_empty() {
        return Vec::new();
    }
    vec![Problem::new(
        "SharedAgentNotFound",
        format!(
            "spec.memory.shared refers to Agent(s) that do not exist in this namespace: {}",
            missing.join(", ")
        ),
    )]
}

/// The status an agent should have given what is wrong with its spec (`Accepted`) and with
/// what it refers to (`Ready` only: those resolve without an edit once the object appears).
pub fn desired_status(
    agent: &Agent,
    spec_problems: &[Problem],
    reference_problems: &[Problem],
    now: &Time,
) -> AgentStatus {
    let current = agent.status.clone().unwrap_or_default();
    let wanted = acceptance_conditions(
        spec_problems,
        reference_problems,
        "the agent spec is valid",
        "the agent is reconciled",
    );
    AgentStatus {
        observed_generation: agent.metadata.generation,
        conditions: conditions::merge_conditions(&current.conditions, &wanted, agent.metadata.generation, now),
        ..current
    }
}

/// Records an event when the `Accepted` condition changes status or reason.
pub(crate) async fn report_acceptance_change<K>(
    ctx: &Context,
    object: &K,
    before: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
    after: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) where
    K: kube::Resource<DynamicType = ()>,
{
    let Some(now) = conditions::find(after, ACCEPTED) else {
        return;
    };
    let previous = before.and_then(|b| conditions::find(b, ACCEPTED));
    if previous.is_some_and(|p| p.status == now.status && p.reason == now.reason) {
        return;
    }
    let type_ = if now.status == "True" {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let reason = if now.status == "True" {
        "Accepted"
    } else {
        now.reason.as_str()
    };
    publish_event(ctx, object, type_, reason, "Validate", now.message.clone()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LocalObjectReference;
    use crate::api::agent::{SessionsSpec, SharedMemory};
    use k8s_openapi::api::core::v1::HostPathVolumeSource;

    fn spec() -> AgentSpec {
        serde_json::from_value(serde_json::json!({"model": "m", "instructions": "be kind"})).unwrap()
    }

    #[test]
    fn a_minimal_spec_is_valid_and_defaults_apply() {
        let spec = spec();
        assert!(validate("a", &spec).is_empty());
        assert_eq!(spec.memory.max_tokens, 16_000);
        assert_eq!(spec.dreaming.approval_timeout, "7d");
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut spec = spec();
        spec.memory.protected_sections = vec!["Core Rules".into()];
        spec.dreaming.approval_timeout = "a week".into();
        spec.sessions = Some(SessionsSpec::default());
        spec.memory.shared = vec![SharedMemory {
            agent_ref: LocalObjectReference { name: "a".into() },
        }];
        let mut problems = validate("a", &spec);
        problems.extend(missing_shared_problem(&["team".into()]));
        let reasons: Vec<_> = problems.iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            [
                "InvalidSectionName",
                "InvalidDuration",
                "InvalidSessionsVolume",
                "InvalidSharedMemory",
                "SharedAgentNotFound"
            ]
        );
        let (reason, message) = crate::controller::summarize(&problems).unwrap();
        assert_eq!(reason, "InvalidSectionName");
        assert!(
            message.contains("spec.memory.protectedSections") && message.contains("team"),
            "{message}"
        );
    }

    #[test]
    fn one_sessions_source_is_valid() {
        let mut spec = spec();
        spec.sessions = Some(SessionsSpec {
            host_path: Some(HostPathVolumeSource {
                path: "/data".into(),
                type_: None,
            }),
            ..Default::default()
        });
        assert!(validate("a", &spec).is_empty());
    }

    #[test]
    fn section_names() {
        assert!(is_valid_section_name("safety"));
        assert!(is_valid_section_name("team-rules2"));
        assert!(!is_valid_section_name(""));
        assert!(!is_valid_section_name("2fa"));
        assert!(!is_valid_section_name("Safety"));
    }
}
