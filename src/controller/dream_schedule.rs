//! DreamSchedule reconciler: validate the schedule → dereference agents and the reflector
//! Secret → build status → update status.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::agent::missing_agents;
use super::report_acceptance_change;
use super::status::apply_status;
use super::{Context, Problem, Result, acceptance_conditions, instrumented};
use crate::api::dream_schedule::{DreamScheduleSpec, DreamScheduleStatus, ReflectorProvider};
use crate::api::{Agent, DreamSchedule, SecretKeyReference, conditions, duration};
use crate::schedule::{Schedule, ScheduleError};

pub const CONTROLLER: &str = "dreamschedule";

pub async fn reconcile(schedule: Arc<DreamSchedule>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_schedule(&schedule, &ctx)).await
}

async fn reconcile_schedule(schedule: &DreamSchedule, ctx: &Context) -> Result<Action> {
    let namespace = schedule.namespace().unwrap_or_default();
    let api = Api::<DreamSchedule>::namespaced(ctx.client.clone(), &namespace);

    let spec_problems = validate(&schedule.spec);
    let reference_problems = if spec_problems.is_empty() {
        dereference(ctx, &namespace, &schedule.spec).await?
    } else {
        Vec::new()
    };
    let desired = desired_status(schedule, &spec_problems, &reference_problems, &ctx.now());
    report_acceptance_change(
        ctx,
        schedule,
        schedule.status.as_ref().map(|s| s.conditions.as_slice()),
        &desired.conditions,
    )
    .await;
    apply_status(&api, schedule, schedule.status.as_ref(), &desired).await?;
    Ok(Action::await_change())
}

/// Everything wrong with a schedule's spec on its own (empty when it is valid).
pub fn validate(spec: &DreamScheduleSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(e) = Schedule::parse(&spec.schedule, &spec.time_zone) {
        let reason = match e {
            ScheduleError::InvalidCron { .. } => "InvalidSchedule",
            ScheduleError::UnknownTimeZone(_) => "UnknownTimeZone",
        };
        problems.push(Problem::new(reason, e.to_string()));
    }
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
    if let Some(selector) = &agents.selector
        && let Err(e) = Selector::try_from(selector.clone())
    {
        problems.push(Problem::new(
            "InvalidAgentSelection",
            format!("spec.agents.selector: {e}"),
        ));
    }
    if let Some(max_age) = &spec.lookback.max_age
        && let Err(e) = duration::parse(max_age)
    {
        problems.push(Problem::new("InvalidDuration", format!("spec.lookback.maxAge: {e}")));
    }
    if let Some(selector) = &spec.lookback.label_selector
        && let Err(e) = Selector::try_from(selector.clone())
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
    problems
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

/// Problems with what the schedule refers to: agents and the reflector's Secret.
async fn dereference(ctx: &Context, namespace: &str, spec: &DreamScheduleSpec) -> Result<Vec<Problem>> {
    let agents = Api::<Agent>::namespaced(ctx.client.clone(), namespace);
    let mut problems = Vec::new();
    let target = spec.agents.collective.as_ref().map(|c| c.target.as_str());
    let missing = missing_agents(&agents, spec.agents.names.iter().map(String::as_str).chain(target)).await?;
    if !missing.is_empty() {
        problems.push(Problem::new(
            "AgentNotFound",
            format!("Agent(s) not found in namespace {namespace}: {}", missing.join(", ")),
        ));
    }
    if let Some(selector) = &spec.agents.selector
        && let Ok(selector) = Selector::try_from(selector.clone())
    {
        let selected = agents
            .list_metadata(&ListParams::default().labels_from(&selector))
            .await?;
        if selected.items.is_empty() {
            problems.push(Problem::new(
                "NoAgentsSelected",
                format!("spec.agents.selector ({selector}) matches no Agent in namespace {namespace}"),
            ));
        }
    }
    if let Some(secret_ref) = &spec.reflector.api_key_secret_ref
        && spec.reflector.provider != ReflectorProvider::Builtin
    {
        problems.extend(check_secret_key(ctx, namespace, secret_ref).await?);
    }
    Ok(problems)
}

async fn check_secret_key(ctx: &Context, namespace: &str, secret_ref: &SecretKeyReference) -> Result<Option<Problem>> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&secret_ref.name).await? else {
        return Ok(Some(Problem::new(
            "SecretNotFound",
            format!(
                "spec.reflector.apiKeySecretRef: Secret {namespace}/{} does not exist",
                secret_ref.name
            ),
        )));
    };
    let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&secret_ref.key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(&secret_ref.key));
    Ok((!has_key).then(|| {
        Problem::new(
            "SecretKeyNotFound",
            format!(
                "spec.reflector.apiKeySecretRef: Secret {namespace}/{} has no key {:?}",
                secret_ref.name, secret_ref.key
            ),
        )
    }))
}

/// The status a schedule should have given the problems found.
pub fn desired_status(
    schedule: &DreamSchedule,
    spec_problems: &[Problem],
    reference_problems: &[Problem],
    now: &Time,
) -> DreamScheduleStatus {
    let current = schedule.status.clone().unwrap_or_default();
    let wanted = acceptance_conditions(
        spec_problems,
        reference_problems,
        "the schedule is valid",
        "the schedule and its agents are ready",
    );
    DreamScheduleStatus {
        observed_generation: schedule.metadata.generation,
        conditions: conditions::merge_conditions(&current.conditions, &wanted, schedule.metadata.generation, now),
        ..current
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
}
