//! Reconciler tests against a scripted API server: the exact requests each main case sends.

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use super::test_support::{Expect, condition, run_scripted, test_context, test_context_with};
use super::{Caches, agent, dream_schedule, memory_proposal};
use crate::api::{Agent, DreamSchedule, MemoryProposal};

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

const SCHEDULES: &str = "/apis/reverie.dev/v1alpha1/namespaces/team/dreamschedules";
const PROPOSALS: &str = "/apis/reverie.dev/v1alpha1/namespaces/team/memoryproposals";

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

/// Caches holding the agent `support` with `spec`, as its watch would have listed it.
fn holding_agent(spec: Value) -> Caches {
    Caches::holding(vec![agent(spec)], Vec::new(), Vec::new())
}

fn valid_agent() -> Agent {
    agent(json!({"model": "claude", "instructions": "Help customers."}))
}

fn schedule(spec: Value) -> DreamSchedule {
    serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
        "metadata": {"name": "nightly", "namespace": "team", "generation": 1, "uid": "u-2"},
        "spec": spec
    }))
    .unwrap()
}

fn proposal(status: Option<Value>) -> MemoryProposal {
    let mut object = json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": "support-1", "namespace": "team", "generation": 1, "uid": "u-3"},
        "spec": {
            "agentRef": {"name": "support"}, "baseRevision": 1, "baseDigest": "sha256:00", "summary": "learned",
            "changes": [{"op": "Add", "section": "lessons", "after": "Look accounts up by billing id", "evidence": {"count": 4, "sessions": ["s1", "s2"]}}]
        }
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    serde_json::from_value(object).unwrap()
}

fn assert_status_patch(seen: &super::test_support::Seen, path: &str) {
    assert_eq!(seen.method, Method::PATCH);
    assert_eq!(seen.path, path);
    assert!(
        seen.query.contains("fieldManager=reverie") && seen.query.contains("force=true"),
        "{}",
        seen.query
    );
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

#[tokio::test]
async fn valid_schedule_checks_its_agents_and_is_ready() {
    let (ctx, handle) = test_context_with(holding_agent(
        json!({"model": "m", "instructions": "x", "sessions": {"hostPath": {"path": "/s"}}}),
    ));
    let nightly =
        schedule(json!({"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "agents": {"names": ["support"]}}));
    let script = vec![
        Expect::patch_status(format!("{SCHEDULES}/nightly/status"), &nightly),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, dream_schedule::reconcile(Arc::new(nightly), ctx)).await;
    result.unwrap();
    assert_status_patch(&seen[0], &format!("{SCHEDULES}/nightly/status"));
    assert_eq!(condition(&seen[0].body, "Ready")["status"], "True");
    assert_eq!(seen[0].body["status"]["observedGeneration"], 1);
    assert_eq!(seen[1].body["reason"], "Accepted");
}

#[tokio::test]
async fn bad_cron_is_reported_without_looking_anything_up() {
    let (ctx, handle) = test_context();
    let broken = schedule(json!({"schedule": "61 * * * *", "agents": {"names": ["support"]}}));
    let script = vec![
        Expect::patch_status(format!("{SCHEDULES}/nightly/status"), &broken),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, dream_schedule::reconcile(Arc::new(broken), ctx)).await;
    result.unwrap();
    assert_eq!(seen[1].body["reason"], "InvalidSchedule");
    let accepted = condition(&seen[0].body, "Accepted");
    assert_eq!(accepted["reason"], "InvalidSchedule");
    assert!(accepted["message"].as_str().unwrap().contains("61 * * * *"));
}

#[tokio::test]
async fn missing_reflector_secret_is_named() {
    let (ctx, handle) = test_context_with(holding_agent(
        json!({"model": "m", "instructions": "x", "sessions": {"hostPath": {"path": "/s"}}}),
    ));
    let with_model = schedule(json!({
        "schedule": "@daily", "agents": {"names": ["support"]},
        "reflector": {"provider": "anthropic", "model": "claude", "apiKeySecretRef": {"name": "anthropic", "key": "api-key"}}
    }));
    let script = vec![
        Expect::not_found("/api/v1/namespaces/team/secrets/anthropic"),
        Expect::patch_status(format!("{SCHEDULES}/nightly/status"), &with_model),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, dream_schedule::reconcile(Arc::new(with_model), ctx)).await;
    result.unwrap();
    let ready = condition(&seen[1].body, "Ready");
    assert_eq!(ready["reason"], "SecretNotFound");
    assert!(ready["message"].as_str().unwrap().contains("team/anthropic"));
    assert_eq!(condition(&seen[1].body, "Accepted")["status"], "True");
}

#[tokio::test]
async fn new_proposal_records_its_digest_and_waits_for_review() {
    let (ctx, handle) = test_context_with(holding_agent(json!({"model": "m", "instructions": "x"})));
    let fresh = proposal(None);
    let digest = fresh.spec.content_digest();
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &fresh),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(fresh), ctx)).await;
    result.unwrap();
    let status = &seen[0].body["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["digest"], digest.as_str());
    assert_eq!(status["changeCount"], 1);
    assert_eq!(status["strongestEvidence"], 4);
    assert_eq!(condition(&seen[0].body, "Ready")["status"], "True");
    let waiting = condition(&seen[0].body, "Applied");
    assert_eq!(
        (&waiting["status"], &waiting["reason"]),
        (&json!("False"), &json!("AwaitingReview"))
    );
}

#[tokio::test]
async fn proposal_whose_content_changed_after_first_sight_is_tampered() {
    let (ctx, handle) = test_context_with(holding_agent(json!({"model": "m", "instructions": "x"})));
    let edited = proposal(Some(
        json!({"phase": "Pending", "digest": format!("sha256:{}", "0".repeat(64))}),
    ));
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &edited),
        Expect::event("team"),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(edited), ctx)).await;
    result.unwrap();
    assert_eq!(seen[0].body["status"]["phase"], "Tampered");
    assert_eq!(condition(&seen[0].body, "Ready")["reason"], "Tampered");
    assert_eq!(seen[2].body["reason"], "Tampered");
}

#[tokio::test]
async fn proposal_for_a_missing_agent_says_so() {
    let (ctx, handle) = test_context();
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &proposal(None)),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(
        handle,
        script,
        memory_proposal::reconcile(Arc::new(proposal(None)), ctx),
    )
    .await;
    result.unwrap();
    assert_eq!(condition(&seen[0].body, "Ready")["reason"], "AgentNotFound");
    assert_eq!(seen[0].body["status"]["phase"], "Pending");
}

/// A proposal already seen by the operator (digest recorded, valid) with `approval` set.
fn seen_proposal(approval: Option<Value>, created: &str) -> MemoryProposal {
    let mut object = serde_json::to_value(proposal(None)).unwrap();
    let digest = proposal(None).spec.content_digest();
    object["metadata"]["creationTimestamp"] = json!(created);
    if let Some(approval) = approval {
        object["spec"]["approval"] = approval;
    }
    object["status"] = json!({
        "observedGeneration": 1, "phase": "Pending", "digest": digest, "changeCount": 1, "strongestEvidence": 4,
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Valid", "message": "the proposal's changes are well formed", "observedGeneration": 1, "lastTransitionTime": "2026-11-20T11:00:00Z"},
            {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "the proposal is ready for review", "observedGeneration": 1, "lastTransitionTime": "2026-11-20T11:00:00Z"}
        ]
    });
    serde_json::from_value(object).unwrap()
}

#[tokio::test]
async fn a_rejection_is_final_recorded_with_who_and_why_and_touches_no_memory() {
    let (ctx, handle) = test_context_with(holding_agent(json!({"model": "m", "instructions": "x"})));
    let rejected = seen_proposal(
        Some(json!({"decision": "Rejected", "reviewer": "ana", "comment": "too specific"})),
        "2026-11-20T11:00:00Z",
    );
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &rejected),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(rejected), ctx)).await;
    assert_eq!(result.unwrap(), kube::runtime::controller::Action::await_change());
    assert_eq!(seen[0].body["status"]["phase"], "Rejected");
    assert_eq!(seen[1].body["reason"], "Rejected");
    assert_eq!(seen[1].body["note"], "rejected by ana: too specific");
    assert!(seen.iter().all(|s| !s.path.contains("configmaps")), "memory untouched");
}

#[tokio::test]
async fn an_undecided_proposal_expires_at_the_agents_timeout() {
    let (ctx, handle) = test_context_with(holding_agent(json!({"model": "m", "instructions": "x"})));
    // Created eight days before the test clock; the agent's timeout is 7d.
    let late = seen_proposal(None, "2026-11-12T12:00:00Z");
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &late),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(late), ctx)).await;
    result.unwrap();
    assert_eq!(seen[0].body["status"]["phase"], "Expired");
    assert_eq!(condition(&seen[0].body, "Applied")["reason"], "Expired");
    assert_eq!(seen[1].body["type"], "Warning");
}

#[tokio::test]
async fn a_pending_proposal_requeues_at_its_expiry() {
    let (ctx, handle) = test_context_with(holding_agent(json!({"model": "m", "instructions": "x"})));
    let fresh = seen_proposal(None, "2026-11-20T11:00:00Z");
    let script = vec![Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &fresh)];
    let (result, _) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(fresh), ctx)).await;
    // 7 days after 11:00 is 6 days 23 hours after the clock's 12:00.
    let expected = std::time::Duration::from_secs(7 * 86_400 - 3_600);
    assert_eq!(result.unwrap(), kube::runtime::controller::Action::requeue(expected));
}

#[tokio::test]
async fn an_approval_for_other_content_fails_and_never_touches_memory() {
    let (ctx, handle) = test_context_with(holding_agent(json!({"model": "m", "instructions": "x"})));
    let other = format!("sha256:{}", "1".repeat(64));
    let approved = seen_proposal(
        Some(json!({"decision": "Approved", "reviewer": "ana", "digest": other})),
        "2026-11-20T11:00:00Z",
    );
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &approved),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(approved), ctx)).await;
    result.unwrap();
    assert_eq!(seen[0].body["status"]["phase"], "Failed");
    assert_eq!(condition(&seen[0].body, "Applied")["reason"], "ApprovalDigestMismatch");
    assert_eq!(seen[1].body["type"], "Warning");
    assert!(seen.iter().all(|s| !s.path.contains("configmaps")), "memory untouched");
}

#[tokio::test]
async fn a_proposal_replaced_by_an_edit_is_superseded() {
    let original = seen_proposal(None, "2026-11-20T11:00:00Z");
    let mut edit = serde_json::to_value(proposal(None)).unwrap();
    edit["metadata"]["name"] = json!("support-1-edit");
    edit["spec"]["source"] = json!({"supersedes": "support-1"});
    let caches = Caches::holding(
        vec![agent(json!({"model": "m", "instructions": "x"}))],
        vec![original.clone(), serde_json::from_value(edit).unwrap()],
        Vec::new(),
    );
    let (ctx, handle) = test_context_with(caches);
    let script = vec![
        Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &original),
        Expect::event("team"),
    ];
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(original), ctx)).await;
    result.unwrap();
    assert_eq!(seen[0].body["status"]["phase"], "Superseded");
    assert!(
        condition(&seen[0].body, "Applied")["message"]
            .as_str()
            .unwrap()
            .contains("support-1-edit")
    );
    assert_eq!(seen[1].body["reason"], "Superseded");
}
