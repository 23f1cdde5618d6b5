//! The CEL rules of the MemoryProposal CRD, evaluated as an API server that enforces
//! `x-kubernetes-validations` (Kubernetes >= 1.25) would: content immutable, decisions final.

use serde_json::{Value, json};

fn schema() -> Value {
    let crd = reverie::api::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "MemoryProposal")
        .unwrap();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn proposal(approval: Option<Value>) -> Value {
    let mut p = json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": "p", "namespace": "team"},
        "spec": {
            "agentRef": {"name": "support"}, "baseRevision": 3, "baseDigest": "sha256:ab", "summary": "learned",
            "changes": [{"op": "Add", "section": "lessons", "after": "Use the billing id", "evidence": {"count": 4, "sessions": ["s1"]}}],
            "stats": {"sessionsReviewed": 50}
        }
    });
    if let Some(approval) = approval {
        p["spec"]["approval"] = approval;
    }
    p
}

fn update(new: &Value, old: &Value) -> Result<(), String> {
    kube_cel::validate(&schema(), new, Some(old)).map_err(|e| format!("{e:?}"))
}

#[test]
fn setting_an_approval_is_allowed() {
    let pending = proposal(None);
    let approved = proposal(Some(json!({"decision": "Approved", "reviewer": "ana"})));
    update(&approved, &pending).unwrap();
}

#[test]
fn changing_the_content_is_rejected() {
    let pending = proposal(None);
    let mut edited = pending.clone();
    edited["spec"]["changes"][0]["after"] = json!("Use the email");
    let error = update(&edited, &pending).unwrap_err();
    assert!(error.contains("immutable"), "{error}");

    let mut rebased = pending.clone();
    rebased["spec"]["baseRevision"] = json!(4);
    assert!(update(&rebased, &pending).is_err());

    let mut without_stats = pending.clone();
    without_stats["spec"].as_object_mut().unwrap().remove("stats");
    assert!(update(&without_stats, &pending).is_err());
}

#[test]
fn a_decision_is_final() {
    let approved = proposal(Some(json!({"decision": "Approved", "reviewer": "ana"})));
    let flipped = proposal(Some(json!({"decision": "Rejected", "reviewer": "bob"})));
    let error = update(&flipped, &approved).unwrap_err();
    assert!(error.contains("final"), "{error}");
    let withdrawn = proposal(None);
    assert!(update(&withdrawn, &approved).is_err());
    update(&approved, &approved).unwrap();
}

#[test]
fn creation_passes_the_rules() {
    kube_cel::validate(&schema(), &proposal(None), None).unwrap();
}
