//! Agent reconciler against a scripted API server: the exact requests of a new agent's first
//! memory revision, an unchanged agent (reads only), an invalid spec, a missing shared agent
//! and an API failure.

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use super::agent;
use super::test_support::{Expect, assert_status_patch, condition, run_scripted, test_context};
use crate::api::Agent;

const AGENTS: &str = "/apis/reverie.dev/v1alpha1/namespaces/team/agents";
const CONFIGMAPS: &str = "/api/v1/namespaces/team/configmaps";

/// The requests that write revision 1 of a new agent's memory: look at the current revision
/// (absent), read it again to commit, create the immutable snapshot, apply the current
/// ConfigMap, prune old snapshots.
fn first_revision_script() -> Vec<Expect> {
    vec![
        Expect::not_found(format!("{CONFIGMAPS}/support-memory")),
        Expect::not_found(format!("{CONFIGMAPS}/support-memory")),
        Expect::new(Method::POST, CONFIGMAPS, http::StatusCode::CREATED, Value::Null),
        Expect::new(
            Method::PATCH,
            format!("{CONFIGMAPS}/support-memory"),
            http::StatusCode::OK,
            Value::Null,
        ),
        Expect::get(
            CONFIGMAPS,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": []}),
        ),
    ]
}

fn agent_json(spec: Value) -> Value {
    json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "support", "namespace": "team", "generation": 2, "uid": "u-1"},
        "spec": spec
    })
}

fn agent(spec: Value) -> Agent {
    serde_json::from_value(agent_json(spec)).unwrap()
}

fn valid_agent() -> Agent {
    agent(json!({"model": "claude", "instructions": "Help customers."}))
}

#[tokio::test]
async fn valid_agent_gets_its_first_memory_revision_and_is_ready() {
    let (ctx, handle) = test_context();
    let object = valid_agent();
    let mut script = first_revision_script();
    script.extend([
        Expect::patch_status(format!("{AGENTS}/support/status"), &object),
        Expect::event("team"),
        Expect::event("team"),
    ]);
    let (result, seen) = run_scripted(handle, script, agent::reconcile(Arc::new(object), ctx)).await;
    result.unwrap();
    // Revision 1 holds the instructions, as a snapshot and as the current memory.
    let snapshot = &seen[2].body;
    assert_eq!(snapshot["metadata"]["name"], "support-memory-r1");
    assert_eq!(snapshot["immutable"], true);
    assert_eq!(snapshot["metadata"]["ownerReferences"][0]["kind"], "Agent");
    assert!(
        snapshot["data"]["MEMORY.md"]
            .as_str()
            .unwrap()
            .contains("Help customers.")
    );
    assert!(seen[3].query.contains("fieldManager=reverie"));
    assert_eq!(seen[3].body["metadata"]["annotations"]["reverie.dev/revision"], "1");
    assert_eq!(seen[6].body["reason"], "Accepted");
    assert_eq!(seen[6].body["type"], "Normal");
    assert_eq!(seen[7].body["reason"], "MemoryRevision");
    assert_status_patch(&seen[5], &format!("{AGENTS}/support/status"));
    let patch = &seen[5].body;
    assert_eq!(patch["status"]["observedGeneration"], 2);
    assert_eq!(patch["status"]["memory"]["revision"], 1);
    assert_eq!(condition(patch, "Accepted")["status"], "True");
    assert_eq!(condition(patch, "MemoryReady")["status"], "True");
    assert_eq!(condition(patch, "RuntimeReady")["reason"], "NotManaged");
    assert_eq!(condition(patch, "Ready")["status"], "True");
    assert_eq!(condition(patch, "Ready")["lastTransitionTime"], "2026-11-20T12:00:00Z");
}

#[tokio::test]
async fn unchanged_agent_makes_no_write() {
    let (ctx, handle) = test_context();
    let object = valid_agent();
    let mut script = first_revision_script();
    script.extend([
        Expect::patch_status(format!("{AGENTS}/support/status"), &object),
        Expect::event("team"),
        Expect::event("team"),
    ]);
    let (_, seen) = run_scripted(handle, script, agent::reconcile(Arc::new(object), ctx)).await;

    // The same agent carrying the status the first reconcile wrote, with its memory as the
    // first reconcile wrote it: the second reconcile only reads.
    let mut reconciled = agent_json(json!({"model": "claude", "instructions": "Help customers."}));
    reconciled["status"] = seen[5].body["status"].clone();
    let reconciled: Agent = serde_json::from_value(reconciled).unwrap();
    let memory = seen[3].body.clone();
    let (ctx, handle) = test_context();
    let script = vec![Expect::get(format!("{CONFIGMAPS}/support-memory"), memory)];
    let (result, seen) = run_scripted(handle, script, agent::reconcile(Arc::new(reconciled), ctx)).await;
    result.unwrap();
    assert!(seen.iter().all(|r| r.method == Method::GET), "{seen:?}");
}

#[tokio::test]
async fn invalid_agent_gets_a_condition_and_a_warning_that_say_why() {
    let (ctx, handle) = test_context();
    let bad = agent(json!({"model": "claude", "instructions": "x", "memory": {"protectedSections": ["Core Rules"]}}));
    let script = vec![
        Expect::patch_status(format!("{AGENTS}/support/status"), &bad),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, agent::reconcile(Arc::new(bad), ctx)).await;
    result.unwrap();
    // An invalid spec never touches the memory.
    assert_eq!(seen[1].body["type"], "Warning");
    assert_eq!(seen[1].body["reason"], "InvalidSectionName");
    assert_eq!(condition(&seen[0].body, "MemoryReady")["reason"], "InvalidSpec");
    let accepted = condition(&seen[0].body, "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "InvalidSectionName");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .contains("\"Core Rules\" is not a section name")
    );
}

#[tokio::test]
async fn missing_shared_agent_is_not_ready_but_accepted() {
    let (ctx, handle) = test_context();
    let sharing = agent(
        json!({"model": "m", "instructions": "x", "memory": {"shared": [{"agentRef": {"name": "team-memory"}}]}}),
    );
    let mut script = first_revision_script();
    script.extend([
        Expect::patch_status(format!("{AGENTS}/support/status"), &sharing),
        Expect::event("team"),
        Expect::event("team"),
    ]);
    let (result, seen) = run_scripted(handle, script, agent::reconcile(Arc::new(sharing), ctx)).await;
    result.unwrap();
    let patch = &seen[5].body;
    assert_eq!(condition(patch, "Accepted")["status"], "True");
    assert_eq!(condition(patch, "Ready")["reason"], "SharedAgentNotFound");
    assert!(
        condition(patch, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("team-memory")
    );
}

#[tokio::test]
async fn a_failing_api_call_is_an_error_not_a_condition() {
    let (ctx, handle) = test_context();
    let failure = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd timeout"});
    let script = vec![Expect::new(
        Method::GET,
        format!("{CONFIGMAPS}/support-memory"),
        http::StatusCode::INTERNAL_SERVER_ERROR,
        failure,
    )];
    let (result, seen) = run_scripted(handle, script, agent::reconcile(Arc::new(valid_agent()), ctx.clone())).await;
    assert_eq!(result.unwrap_err().metric_label(), "kube_api");
    assert_eq!(seen.len(), 1);
    assert!(
        ctx.metrics
            .encode()
            .contains("reverie_reconcile_errors_total{controller=\"agent\",error=\"kube_api\"} 1")
    );
}
