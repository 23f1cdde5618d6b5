//! MemoryProposal apply path against a scripted API server: the exact requests of an approved
//! proposal written as the next ConfigMap revision, one found already applied, and one whose
//! base moved on under an entry it changes.

use std::sync::Arc;

use http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::test_support::{Expect, Seen, condition, run_scripted, test_context, test_context_with};
use super::{Caches, memory_proposal};
use reverie_api::test_support::AgentBuilder;

use crate::api::{Agent, MemoryProposal};
use crate::memory::MemoryDocument;
use crate::memory::change::{Change, apply};
use crate::memory::document::{Entry, EntryKind, Evidence};
use crate::store::Snapshot;

const PROPOSALS: &str = "/apis/reverie.dev/v1alpha1/namespaces/team/memoryproposals";
const CONFIGMAPS: &str = "/api/v1/namespaces/team/configmaps";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The agent the proposals are for, as the Agent watch lists it.
fn agent() -> Agent {
    AgentBuilder::new("support")
        .namespace("team")
        .uid("a-1")
        .instructions("Help customers.")
        .spec(|spec| spec.model = "m".into())
        .build()
}

/// Revision 1: the instructions and one lesson.
fn revision_1() -> Snapshot {
    let doc = MemoryDocument::with_instructions("Help customers.", &[], ts("2026-11-01T00:00:00Z"));
    let lesson = Entry {
        id: "lesson-a".into(),
        text: "Check the account id.".into(),
        kind: EntryKind::Lesson,
        evidence: Evidence {
            count: 3,
            ..Evidence::default()
        },
        provenance: None,
        created: ts("2026-11-01T00:00:00Z"),
        reinforced: None,
        pinned: false,
    };
    let doc = apply(
        &doc,
        &[Change::Add {
            section: "lessons".into(),
            entry: lesson,
        }],
    )
    .unwrap();
    Snapshot::build("support", 1, "agent-spec/x", doc)
}

/// The ConfigMap holding `snapshot` (`name` is the current one or a revision's).
fn memory_configmap(name: &str, snapshot: &Snapshot) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "team", "resourceVersion": "7",
                     "labels": {"reverie.dev/agent": "support"}, "annotations": snapshot.info.annotations()},
        "data": {"memory.yaml": snapshot.yaml, "MEMORY.md": snapshot.markdown}
    })
}

fn metadata_list(items: Vec<Value>) -> Expect {
    let items: Vec<Value> = items
        .into_iter()
        .map(|c| json!({"apiVersion": "v1", "kind": "PartialObjectMetadata", "metadata": c["metadata"]}))
        .collect();
    Expect::get(
        CONFIGMAPS,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": items}),
    )
}

/// An approved proposal on `base` changing `change`, already seen by the operator.
fn approved(base: &Snapshot, change: Value) -> MemoryProposal {
    let mut object = json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": "support-7", "namespace": "team", "generation": 1, "uid": "p-7",
                     "creationTimestamp": "2026-11-20T11:00:00Z"},
        "spec": {"agentRef": {"name": "support"}, "baseRevision": base.info.revision, "baseDigest": base.info.digest,
                 "summary": "learned", "changes": [change]}
    });
    let digest = serde_json::from_value::<MemoryProposal>(object.clone())
        .unwrap()
        .spec
        .content_digest();
    object["spec"]["approval"] = json!({"decision": "Approved", "reviewer": "ana", "digest": digest});
    object["status"] = json!({
        "observedGeneration": 1, "phase": "Pending", "digest": digest, "changeCount": 1,
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Valid", "message": "the proposal's changes are well formed", "observedGeneration": 1, "lastTransitionTime": "2026-11-20T11:00:00Z"},
            {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "the proposal is ready for review", "observedGeneration": 1, "lastTransitionTime": "2026-11-20T11:00:00Z"}
        ]
    });
    serde_json::from_value(object).unwrap()
}

fn add_lesson() -> Value {
    json!({"op": "Add", "id": "lesson-b", "section": "lessons", "after": "Retry after a 429.", "evidence": {"count": 4}})
}

async fn reconcile(proposal: MemoryProposal, script: Vec<Expect>) -> Vec<Seen> {
    let caches = Caches::holding(vec![agent()], vec![proposal.clone()], Vec::new());
    let (ctx, handle) = test_context_with(caches);
    let (result, seen) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(proposal), ctx)).await;
    result.expect("reconcile succeeds");
    seen
}

#[tokio::test]
async fn an_approved_proposal_is_written_as_the_next_revision_and_the_previous_one_kept() {
    let base = revision_1();
    let current = memory_configmap("support-memory", &base);
    let proposal = approved(&base, add_lesson());
    let script = vec![
        metadata_list(vec![current.clone()]),
        Expect::get(format!("{CONFIGMAPS}/support-memory"), current.clone()),
        Expect::get(format!("{CONFIGMAPS}/support-memory"), current),
        Expect::new(Method::POST, CONFIGMAPS, StatusCode::CREATED, Value::Null),
        Expect::new(
            Method::PATCH,
            format!("{CONFIGMAPS}/support-memory"),
            StatusCode::OK,
            Value::Null,
        ),
        metadata_list(vec![]),
        Expect::patch_status(format!("{PROPOSALS}/support-7/status"), &proposal),
        Expect::event("team"),
        Expect::event("team"),
    ];
    let seen = reconcile(proposal, script).await;
    let snapshot = &seen[3].body;
    assert_eq!(snapshot["metadata"]["name"], "support-memory-r2");
    assert_eq!(
        snapshot["metadata"]["annotations"]["reverie.dev/update"],
        "proposal/support-7/".to_string() + &seen[6].body["status"]["digest"].as_str().unwrap()[7..19]
    );
    assert!(
        snapshot["data"]["MEMORY.md"]
            .as_str()
            .unwrap()
            .contains("Retry after a 429.")
    );
    assert_eq!(
        seen[4].body["metadata"]["resourceVersion"], "7",
        "the write is conditional on what was read"
    );
    let status = &seen[6].body["status"];
    assert_eq!(
        (&status["phase"], &status["appliedRevision"], &status["approvedBy"]),
        (&json!("Applied"), &json!(2), &json!("ana"))
    );
    assert_eq!(condition(&seen[6].body, "Applied")["status"], "True");
    assert_eq!(
        (&seen[7].body["reason"], &seen[8].body["reason"]),
        (&json!("Approved"), &json!("Applied"))
    );
}

#[tokio::test]
async fn a_proposal_whose_revision_is_already_kept_is_applied_without_writing() {
    let base = revision_1();
    let proposal = approved(&base, add_lesson());
    let digest = proposal.status.as_ref().unwrap().digest.clone().unwrap();
    // A previous reconcile wrote revision 2 and was killed before recording it.
    let mut written = base.clone();
    written.info.revision = 2;
    written.info.update = format!("proposal/support-7/{}", &digest[7..19]);
    let current = memory_configmap("support-memory", &written);
    let script = vec![
        metadata_list(vec![memory_configmap("support-memory-r1", &base), current]),
        Expect::patch_status(format!("{PROPOSALS}/support-7/status"), &proposal),
        Expect::event("team"),
        Expect::event("team"),
    ];
    let seen = reconcile(proposal, script).await;
    assert!(
        seen.iter()
            .all(|s| !s.path.starts_with(CONFIGMAPS) || s.method == Method::GET),
        "nothing written twice"
    );
    assert_eq!(seen[1].body["status"]["appliedRevision"], 2);
}

#[tokio::test]
async fn a_change_to_an_entry_changed_since_the_base_is_conflicted_not_overwritten() {
    let base = revision_1();
    // Revision 3 reworded lesson-a after the proposal's base, revision 1.
    let mut reworded = base.doc.clone();
    let mut entry = reworded.find("lesson-a").unwrap().1.clone();
    entry.text = "Check the billing account id.".into();
    reworded = apply(&reworded, &[Change::Update { entry }]).unwrap();
    let current = memory_configmap(
        "support-memory",
        &Snapshot::build("support", 3, "proposal/other/1", reworded),
    );
    let proposal = approved(
        &base,
        json!({"op": "Update", "id": "lesson-a", "after": "Check the customer id.", "evidence": {"count": 5}}),
    );
    let script = vec![
        metadata_list(vec![current.clone()]),
        Expect::get(format!("{CONFIGMAPS}/support-memory"), current),
        Expect::get(
            format!("{CONFIGMAPS}/support-memory-r1"),
            memory_configmap("support-memory-r1", &base),
        ),
        Expect::patch_status(format!("{PROPOSALS}/support-7/status"), &proposal),
        Expect::event("team"),
        Expect::event("team"),
    ];
    let seen = reconcile(proposal, script).await;
    assert_eq!(seen[3].body["status"]["phase"], "Conflicted");
    let message = condition(&seen[3].body, "Applied")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("lesson-a") && message.contains("was updated"),
        "{message}"
    );
    assert_eq!(seen[5].body["type"], "Warning");
    assert!(
        seen.iter()
            .all(|s| !s.path.starts_with(CONFIGMAPS) || s.method == Method::GET),
        "memory untouched"
    );
}

/// Caches holding the agent, as its watch would have listed it.
fn holding_agent() -> Caches {
    Caches::holding(vec![agent()], Vec::new(), Vec::new())
}

/// A new proposal for `support` (name `support-1`) with `status`.
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
async fn new_proposal_records_its_digest_and_waits_for_review() {
    let (ctx, handle) = test_context_with(holding_agent());
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
    let (ctx, handle) = test_context_with(holding_agent());
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

#[tokio::test]
async fn a_rejection_is_final_recorded_with_who_and_why_and_touches_no_memory() {
    let (ctx, handle) = test_context_with(holding_agent());
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
    let (ctx, handle) = test_context_with(holding_agent());
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
    let (ctx, handle) = test_context_with(holding_agent());
    let fresh = seen_proposal(None, "2026-11-20T11:00:00Z");
    let script = vec![Expect::patch_status(format!("{PROPOSALS}/support-1/status"), &fresh)];
    let (result, _) = run_scripted(handle, script, memory_proposal::reconcile(Arc::new(fresh), ctx)).await;
    // 7 days after 11:00 is 6 days 23 hours after the clock's 12:00.
    let expected = std::time::Duration::from_secs(7 * 86_400 - 3_600);
    assert_eq!(result.unwrap(), kube::runtime::controller::Action::requeue(expected));
}

#[tokio::test]
async fn an_approval_for_other_content_fails_and_never_touches_memory() {
    let (ctx, handle) = test_context_with(holding_agent());
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
        vec![agent()],
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
