//! `kubectl dream run AGENT`: dream now, by setting `reverie.dev/dream-now` on every
//! DreamSchedule that selects the agent (the schedule controller starts a pass for each new
//! value).

use jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::{Output, Session, api_error, serialize};
use crate::api::dream_job::DREAM_NOW_ANNOTATION;
use crate::api::{Agent, DreamSchedule};

pub(super) async fn run(session: &Session, output: Output, agent_name: &str) -> Result<String, String> {
    let agents = Api::<Agent>::namespaced(session.client.clone(), &session.namespace);
    let agent = agents
        .get_opt(agent_name)
        .await
        .map_err(|e| api_error(&format!("cannot read agent {agent_name}"), &e))?
        .ok_or_else(|| format!("agent {agent_name} not found in namespace {}", session.namespace))?;
    let api = Api::<DreamSchedule>::namespaced(session.client.clone(), &session.namespace);
    let mut schedules = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("cannot list dreamschedules", &e))?
        .items;
    schedules.retain(|s| selects(s, &agent));
    schedules.sort_by_key(ResourceExt::name_any);
    if schedules.is_empty() {
        return Err(format!(
            "no DreamSchedule selects agent {agent_name} in namespace {}",
            session.namespace
        ));
    }
    let value = Timestamp::now().to_string();
    let patch = dream_now_patch(&value);
    let mut triggered = Vec::new();
    for schedule in &schedules {
        let name = schedule.name_any();
        let written = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| api_error(&format!("cannot trigger dreamschedule {name}"), &e))?;
        triggered.push(written);
    }
    match output {
        Output::Table => Ok(triggered
            .iter()
            .map(|s| {
                let note = if s.spec.suspend {
                    " (suspended: only this requested pass runs)"
                } else {
                    ""
                };
                format!(
                    "dreamschedule/{} triggered: {DREAM_NOW_ANNOTATION}={value}{note}\n",
                    s.name_any()
                )
            })
            .collect()),
        _ => serialize(&triggered, output),
    }
}

/// The merge patch that asks a schedule for a pass now.
pub fn dream_now_patch(value: &str) -> Value {
    json!({"metadata": {"annotations": {DREAM_NOW_ANNOTATION: value}}})
}

/// Whether `schedule` makes `agent` dream: by name, by label selector, or as the target of a
/// collective pass.
pub fn selects(schedule: &DreamSchedule, agent: &Agent) -> bool {
    let name = agent.name_any();
    let agents = &schedule.spec.agents;
    if agents.names.contains(&name) || agents.collective.as_ref().is_some_and(|c| c.target == name) {
        return true;
    }
    agents
        .selector
        .clone()
        .and_then(|s| Selector::try_from(s).ok())
        .is_some_and(|selector| selector.matches(agent.labels()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, labels: Value) -> Agent {
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "labels": labels},
            "spec": {"model": "m", "instructions": "i"}
        }))
        .unwrap()
    }

    fn schedule(agents: Value) -> DreamSchedule {
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule", "metadata": {"name": "nightly"},
            "spec": {"schedule": "@daily", "agents": agents}
        }))
        .unwrap()
    }

    #[test]
    fn schedules_select_by_name_selector_or_collective_target() {
        let support = agent("support", json!({"team": "billing"}));
        assert!(selects(&schedule(json!({"names": ["a", "support"]})), &support));
        assert!(!selects(&schedule(json!({"names": ["a"]})), &support));
        assert!(selects(
            &schedule(json!({"selector": {"matchLabels": {"team": "billing"}}})),
            &support
        ));
        assert!(!selects(
            &schedule(json!({"selector": {"matchLabels": {"team": "sales"}}})),
            &support
        ));
        let expression =
            json!({"selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["billing", "x"]}]}});
        assert!(selects(&schedule(expression), &support));
        assert!(selects(
            &schedule(json!({"names": ["a", "b"], "collective": {"target": "support"}})),
            &support
        ));
    }

    #[test]
    fn the_patch_sets_the_dream_now_annotation() {
        assert_eq!(
            dream_now_patch("2026-11-20T10:00:00Z"),
            json!({"metadata": {"annotations": {"reverie.dev/dream-now": "2026-11-20T10:00:00Z"}}})
        );
    }
}
