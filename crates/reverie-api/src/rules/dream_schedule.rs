//! The pure rules of a DreamSchedule: what makes its spec valid on its own.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::core::Selector;
use reverie_core::schedule::{Schedule, ScheduleError};

use super::Problem;
use crate::dream_schedule::{DreamScheduleSpec, ReflectorProvider};
use crate::duration;

/// What checking a spec parsed, so no later step parses it again.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The cron expression in its time zone.
    pub cron: Schedule,
    /// `spec.agents.selector`, when the schedule selects agents by label.
    pub selector: Option<Selector>,
}

/// Everything wrong with a schedule's spec on its own, apart from its output settings (empty
/// when it is valid).
pub fn validate(spec: &DreamScheduleSpec) -> Vec<Problem> {
    check(spec).err().unwrap_or_default()
}

/// The parsed schedule and selector of a valid spec, or everything wrong with it (apart from
/// its output settings).
pub fn check(spec: &DreamScheduleSpec) -> Result<Parsed, Vec<Problem>> {
    let mut problems = Vec::new();
    let cron = match Schedule::parse(&spec.schedule, &spec.time_zone) {
        Err(e) => {
            let reason = match e {
                ScheduleError::InvalidCron { .. } => "InvalidSchedule",
                ScheduleError::UnknownTimeZone(_) => "UnknownTimeZone",
            };
            problems.push(Problem::new(reason, e.to_string()));
            None
        }
        // Fire times are searched from 2000 on; a date that never occurs (February 30th)
        // would leave the schedule silently idle.
        Ok(parsed)
            if parsed
                .next_after(Timestamp::from_second(946_684_800).unwrap_or_default())
                .is_none() =>
        {
            problems.push(Problem::new(
                "InvalidSchedule",
                format!("schedule {:?} never fires: no date matches it", spec.schedule),
            ));
            None
        }
        Ok(parsed) => Some(parsed),
    };
    let agents = &spec.agents;
    match (agents.names.is_empty(), agents.selector.is_some()) {
        (true, false) => problems.push(Problem::new(
            "InvalidAgentSelection",
            "spec.agents: set either names or selector to choose which agents dream",
        )),
        (false, true) => problems.push(Problem::new(
            "InvalidAgentSelection",
            "spec.agents: set names or selector, not both",
        )),
        _ => {}
    }
    let selector = match agents.selector.clone().map(Selector::try_from).transpose() {
        Ok(selector) => selector,
        Err(e) => {
            problems.push(Problem::new(
                "InvalidAgentSelection",
                format!("spec.agents.selector: {e}"),
            ));
            None
        }
    };
    if let Some(max_age) = &spec.lookback.max_age
        && let Err(e) = duration::parse(max_age)
    {
        problems.push(Problem::new("InvalidDuration", format!("spec.lookback.maxAge: {e}")));
    }
    if let Some(selector) = &spec.lookback.label_selector
        && let Err(e) = session_labels(selector)
    {
        problems.push(Problem::new(
            "InvalidLookback",
            format!("spec.lookback.labelSelector: {e}"),
        ));
    }
    if let Err(e) = duration::parse(&spec.curation.stale_after) {
        problems.push(Problem::new(
            "InvalidDuration",
            format!("spec.curation.staleAfter: {e}"),
        ));
    }
    problems.extend(validate_reflector(spec));
    match cron {
        Some(cron) if problems.is_empty() => Ok(Parsed { cron, selector }),
        _ => Err(problems),
    }
}

fn validate_reflector(spec: &DreamScheduleSpec) -> Vec<Problem> {
    let reflector = &spec.reflector;
    let mut problems = Vec::new();
    if reflector.provider == ReflectorProvider::Builtin {
        return problems;
    }
    if reflector.model.as_deref().is_none_or(str::is_empty) {
        problems.push(Problem::new(
            "InvalidReflector",
            "spec.reflector.model: a model name is required for the anthropic and openai reflectors",
        ));
    }
    if reflector.provider == ReflectorProvider::Anthropic && reflector.api_key_secret_ref.is_none() {
        problems.push(Problem::new(
            "InvalidReflector",
            "spec.reflector.apiKeySecretRef: the anthropic reflector needs an API key from a Secret",
        ));
    }
    if let Some(endpoint) = &reflector.endpoint
        && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
    {
        problems.push(Problem::new(
            "InvalidReflector",
            format!("spec.reflector.endpoint: {endpoint:?} is not an http(s) URL"),
        ));
    }
    problems
}

/// The session-label filter as `key=value` / `key` arguments. Session labels support equality
/// and presence only, so `In` with one value and `Exists` are the expressions accepted.
pub fn session_labels(selector: &LabelSelector) -> Result<Vec<String>, String> {
    let mut labels: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        labels.push(expression_label(expression)?);
    }
    Ok(labels)
}

fn expression_label(expression: &LabelSelectorRequirement) -> Result<String, String> {
    let values = expression.values.as_deref().unwrap_or_default();
    match (expression.operator.as_str(), values) {
        ("Exists", _) => Ok(expression.key.clone()),
        ("In", [value]) => Ok(format!("{}={value}", expression.key)),
        (operator, _) => Err(format!(
            "session labels support matchLabels, `Exists` and `In` with one value; {operator} on {:?} is not supported",
            expression.key
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> DreamScheduleSpec {
        let mut base = serde_json::json!({"schedule": "@daily", "agents": {"names": ["support"]}});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn reasons(spec: &DreamScheduleSpec) -> Vec<&'static str> {
        validate(spec).iter().map(|p| p.reason).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let spec = spec(serde_json::json!({}));
        assert!(validate(&spec).is_empty());
        assert_eq!(spec.time_zone, "UTC");
        assert_eq!(spec.lookback.sessions, 50);
        assert_eq!(spec.curation.min_evidence, 3);
        assert_eq!(spec.successful_jobs_history_limit, 3);
    }

    #[test]
    fn bad_cron_and_time_zone_have_their_own_reasons() {
        assert_eq!(
            reasons(&spec(serde_json::json!({"schedule": "every night"}))),
            ["InvalidSchedule"]
        );
        assert_eq!(
            reasons(&spec(serde_json::json!({"timeZone": "Europe/Atlantis"}))),
            ["UnknownTimeZone"]
        );
        assert_eq!(
            reasons(&spec(serde_json::json!({"schedule": "0 0 30 2 *"}))),
            ["InvalidSchedule"]
        );
    }

    #[test]
    fn agents_need_names_or_a_selector_but_not_both() {
        assert_eq!(
            reasons(&spec(serde_json::json!({"agents": {}}))),
            ["InvalidAgentSelection"]
        );
        assert_eq!(
            reasons(&spec(
                serde_json::json!({"agents": {"names": ["a"], "selector": {"matchLabels": {"team": "x"}}}})
            )),
            ["InvalidAgentSelection"]
        );
        assert!(
            reasons(&spec(
                serde_json::json!({"agents": {"selector": {"matchLabels": {"team": "x"}}}})
            ))
            .is_empty()
        );
    }

    #[test]
    fn model_reflectors_need_a_model_and_anthropic_a_key() {
        let anthropic = spec(serde_json::json!({"reflector": {"provider": "anthropic"}}));
        assert_eq!(reasons(&anthropic), ["InvalidReflector", "InvalidReflector"]);
        let openai = spec(
            serde_json::json!({"reflector": {"provider": "openai", "model": "llama", "endpoint": "http://llm:8000"}}),
        );
        assert!(reasons(&openai).is_empty());
        let bad_endpoint =
            spec(serde_json::json!({"reflector": {"provider": "openai", "model": "m", "endpoint": "llm:8000"}}));
        assert_eq!(reasons(&bad_endpoint), ["InvalidReflector"]);
    }

    #[test]
    fn durations_are_checked() {
        assert_eq!(
            reasons(&spec(
                serde_json::json!({"lookback": {"maxAge": "two weeks"}, "curation": {"staleAfter": "1y"}})
            )),
            ["InvalidDuration", "InvalidDuration"]
        );
    }

    #[test]
    fn session_label_selectors_map_to_label_flags_or_explain_what_is_unsupported() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({"matchLabels": {"project": "billing"},
            "matchExpressions": [{"key": "vip", "operator": "Exists"}, {"key": "tier", "operator": "In", "values": ["gold"]}]}))
        .unwrap();
        assert_eq!(
            session_labels(&selector).unwrap(),
            ["project=billing", "vip", "tier=gold"]
        );
        let unsupported: LabelSelector = serde_json::from_value(
            serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}),
        )
        .unwrap();
        assert!(session_labels(&unsupported).unwrap_err().contains("NotIn"));
    }
}
