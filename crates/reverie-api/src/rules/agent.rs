//! The pure rules of an Agent: what makes its spec valid on its own and with what it refers to.

use reverie_core::memory::document::is_section_name;

use super::Problem;
use crate::agent::AgentSpec;
use crate::duration;

/// Everything wrong with an agent's spec on its own (empty when it is valid).
pub fn validate(name: &str, spec: &AgentSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    for section in &spec.memory.protected_sections {
        if !is_section_name(section) {
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

pub fn missing_shared_problem(missing: &[String]) -> Vec<Problem> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalObjectReference;
    use crate::agent::{SessionsSpec, SharedMemory};
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
        let (reason, message) = super::super::summarize(&problems).unwrap();
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
        assert!(is_section_name("safety"));
        assert!(is_section_name("team-rules2"));
        assert!(!is_section_name(""));
        assert!(!is_section_name("2fa"));
        assert!(!is_section_name("Safety"));
    }
}
