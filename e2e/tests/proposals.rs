//! MemoryProposals on a real API server: an approval applies the changes as the next memory
//! revision (the previous one kept), a rejection changes nothing, and a second proposal on the
//! same base is rebased when its changes are disjoint.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use reverie::api::memory_proposal::Phase;
use reverie::api::{Agent, MemoryProposal};
use reverie_api::test_support::{self, AgentBuilder, MemoryProposalBuilder};
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, has_condition, install_crds, memory_md, wait_digest, wait_for,
    wait_phase,
};
use serde_json::json;

/// A proposal of `lesson` for agent `support` on the given memory revision.
fn proposal(name: &str, base_revision: u64, base_digest: &str, lesson: &str) -> MemoryProposal {
    MemoryProposalBuilder::new(name)
        .base(base_revision, base_digest)
        .summary("Reviewed 12 sessions.")
        .change(test_support::lesson(lesson, 4, &["s-1", "s-2", "s-3", "s-4"]))
        .build()
}

/// Waits for the operator to record the digest, then writes the decision as a reviewer does.
async fn decide(api: &Api<MemoryProposal>, name: &str, decision: &str) {
    let digest = wait_digest(api, name).await.unwrap();
    let patch = json!({"spec": {"approval": {"decision": decision, "reviewer": "ana", "digest": digest}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn approval_applies_the_next_revision_and_rejection_changes_nothing() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "proposals").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "proposals").await.unwrap();
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    let configmaps = ns.api::<ConfigMap>();
    let support = AgentBuilder::new("support").build();
    apply(&agents, &support).await.unwrap();
    let ready = wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let base = ready.status.unwrap().memory.unwrap();

    // Rejected: nothing changes.
    let rejected = proposal("support-reject", 1, &base.digest, "Always escalate refunds.");
    proposals.create(&PostParams::default(), &rejected).await.unwrap();
    decide(&proposals, "support-reject", "Rejected").await;
    wait_phase(&proposals, "support-reject", Phase::Rejected).await.unwrap();
    assert_eq!(
        configmaps.get("support-memory").await.unwrap().annotations()["reverie.dev/revision"],
        "1"
    );

    // Two proposals on revision 1 with disjoint changes: the first applies as revision 2, the
    // second is rebased onto it as revision 3.
    for (name, lesson) in [
        ("support-a", "Look accounts up by billing id, not email."),
        ("support-b", "Retry the invoice API after a 429."),
    ] {
        proposals
            .create(&PostParams::default(), &proposal(name, 1, &base.digest, lesson))
            .await
            .unwrap();
    }
    decide(&proposals, "support-a", "Approved").await;
    let first = wait_phase(&proposals, "support-a", Phase::Applied).await.unwrap();
    let first_status = first.status.unwrap();
    assert_eq!(first_status.applied_revision, Some(2));
    assert_eq!(first_status.approved_by.as_deref(), Some("ana"));
    let memory = configmaps.get("support-memory").await.unwrap();
    assert!(memory_md(&memory).contains("Look accounts up by billing id"));
    assert!(
        configmaps.get_opt("support-memory-r1").await.unwrap().is_some(),
        "revision 1 kept"
    );

    decide(&proposals, "support-b", "Approved").await;
    let second = wait_phase(&proposals, "support-b", Phase::Applied).await.unwrap();
    let second_status = second.status.unwrap();
    assert_eq!(
        (second_status.applied_revision, second_status.rebased_from),
        (Some(3), Some(1))
    );
    let memory = configmaps.get("support-memory").await.unwrap();
    assert!(memory_md(&memory).contains("Look accounts up by billing id"));
    assert!(memory_md(&memory).contains("Retry the invoice API after a 429."));

    // The agent lists the applied revisions, newest first.
    let agent = wait_for(&agents, "support", "history of two revisions", |a: Option<&Agent>| {
        a.and_then(|a| a.status.as_ref()).is_some_and(|s| s.history.len() == 2)
    })
    .await
    .unwrap();
    let history = agent.status.unwrap().history;
    assert_eq!(
        history
            .iter()
            .map(|r| (r.revision, r.proposal.clone().unwrap()))
            .collect::<Vec<_>>(),
        [(3, "support-b".to_string()), (2, "support-a".to_string())]
    );
    drop(operator);
    ns.delete().await.unwrap();
}

/// A proposal rewording entry `id` to `text` on the given memory revision.
fn update_of(name: &str, base_revision: u64, base_digest: &str, id: &str, text: &str) -> MemoryProposal {
    MemoryProposalBuilder::new(name)
        .base(base_revision, base_digest)
        .summary("A sharper wording.")
        .change(test_support::update(id, text, 5))
        .build()
}

#[tokio::test]
async fn overlapping_proposals_conflict_tampering_is_caught_and_the_deployment_rolls() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "review").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "review").await.unwrap();
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    let deployments = ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    let support = AgentBuilder::new("support")
        .runtime("agent-runtime:1", &["sh", "-c", "while true; do sleep 1; done"])
        .spec(|spec| spec.dreaming.approval_timeout = "1s".into())
        .build();
    apply(&agents, &support).await.unwrap();
    let ready = wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let base = ready.status.unwrap().memory.unwrap();

    // Nobody decides within approvalTimeout: the proposal expires (onTimeout: Reject).
    proposals
        .create(
            &PostParams::default(),
            &proposal("support-late", 1, &base.digest, "Never guess."),
        )
        .await
        .unwrap();
    wait_phase(&proposals, "support-late", Phase::Expired).await.unwrap();

    // A longer timeout for the rest; approving the lesson rolls the agent's pods.
    let patch = json!({"spec": {"dreaming": {"approvalTimeout": "7d"}}});
    agents
        .patch("support", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let lesson = "Look accounts up by billing id, not email.";
    proposals
        .create(&PostParams::default(), &proposal("support-a", 1, &base.digest, lesson))
        .await
        .unwrap();
    decide(&proposals, "support-a", "Approved").await;
    let applied = wait_phase(&proposals, "support-a", Phase::Applied)
        .await
        .unwrap()
        .status
        .unwrap();
    let new_digest = applied.applied_digest.clone().unwrap();
    wait_for(
        &deployments,
        "support",
        "pods rolled to the new memory",
        move |d: Option<&k8s_openapi::api::apps::v1::Deployment>| {
            d.and_then(|d| {
                d.spec
                    .as_ref()?
                    .template
                    .metadata
                    .as_ref()?
                    .annotations
                    .as_ref()?
                    .get("reverie.dev/memory-digest")
                    .cloned()
            })
            .as_deref()
                == Some(new_digest.as_str())
        },
    )
    .await
    .unwrap();

    // Two rewordings of that lesson on revision 2: the first applies, the second conflicts.
    let id = format!("lessons-{}", reverie::naming::short_hash(lesson));
    let digest2 = applied.applied_digest.unwrap();
    for (name, text) in [
        ("support-b", "Look accounts up by billing id."),
        ("support-c", "Use the billing id."),
    ] {
        proposals
            .create(&PostParams::default(), &update_of(name, 2, &digest2, &id, text))
            .await
            .unwrap();
    }
    decide(&proposals, "support-b", "Approved").await;
    wait_phase(&proposals, "support-b", Phase::Applied).await.unwrap();
    decide(&proposals, "support-c", "Approved").await;
    let conflicted = wait_phase(&proposals, "support-c", Phase::Conflicted).await.unwrap();
    let message = reverie_e2e::condition(&conflicted, "Applied").unwrap().message.clone();
    assert!(message.contains(&id) && message.contains("was updated"), "{message}");

    // The API server itself keeps a proposal's content fixed and a decision final (the CRD's
    // CEL rules), and reports unknown fields under strict field validation.
    proposals
        .create(
            &PostParams::default(),
            &proposal("support-d", 3, "sha256:unknown", "Answer in French."),
        )
        .await
        .unwrap();
    let edited = json!({"spec": {"summary": "something else"}});
    let refused = proposals
        .patch("support-d", &PatchParams::default(), &Patch::Merge(&edited))
        .await
        .unwrap_err();
    assert_refused(&refused, 422, "the content of a MemoryProposal is immutable");
    let reject = json!({"spec": {"approval": {"decision": "Rejected", "reviewer": "ana"}}});
    proposals
        .patch("support-d", &PatchParams::default(), &Patch::Merge(&reject))
        .await
        .unwrap();
    let approve = json!({"spec": {"approval": {"decision": "Approved", "reviewer": "ana"}}});
    let refused = proposals
        .patch("support-d", &PatchParams::default(), &Patch::Merge(&approve))
        .await
        .unwrap_err();
    assert_refused(&refused, 422, "spec.approval is final");
    let unknown = json!({"spec": {"approval": {"decision": "Rejected", "reviewer": "ana", "signedOff": true}}});
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::default()
    };
    let refused = proposals
        .patch("support-d", &strict, &Patch::Merge(&unknown))
        .await
        .unwrap_err();
    assert_refused(
        &refused,
        422,
        "strict decoding error: unknown field \"spec.approval.signedOff\"",
    );
    let memory = ns.api::<ConfigMap>().get("support-memory").await.unwrap();
    assert!(!memory_md(&memory).contains("Answer in French."));
    let kept = proposals.get("support-d").await.unwrap();
    assert_eq!(kept.spec.summary, "Reviewed 12 sessions.");
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn a_proposal_for_a_pvc_memory_is_applied_by_the_apply_job() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "pvc-proposal").await.unwrap();
    // Finished apply Jobs are kept 2 s here (a day by default), to see Kubernetes delete them.
    let mut operator =
        OperatorProcess::spawn_with(&ns.name, "pvc-proposal", &["--apply-job-ttl-seconds", "2"]).unwrap();
    operator.wait_ready().await.unwrap();
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "memories"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    ns.api::<PersistentVolumeClaim>()
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    let support = AgentBuilder::new("support").pvc_memory("memories", "support").build();
    apply(&agents, &support).await.unwrap();
    let ready = wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let base = ready.status.unwrap().memory.unwrap();
    let lesson = "Look accounts up by billing id, not email.";
    proposals
        .create(
            &PostParams::default(),
            &proposal("support-a", base.revision, &base.digest, lesson),
        )
        .await
        .unwrap();
    decide(&proposals, "support-a", "Approved").await;
    let applied = wait_phase(&proposals, "support-a", Phase::Applied)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(applied.applied_revision, Some(base.revision + 1));

    let bound = ns.api::<PersistentVolumeClaim>().get("memories").await.unwrap();
    let volume = bound.spec.unwrap().volume_name.unwrap();
    let pv = Api::<PersistentVolume>::all(client.clone()).get(&volume).await.unwrap();
    let dir = std::path::PathBuf::from(pv.spec.unwrap().host_path.unwrap().path).join("support");
    let memory = std::fs::read_to_string(dir.join("MEMORY.md")).unwrap();
    assert!(memory.contains(lesson), "{memory}");
    assert!(
        dir.join(format!("revisions/r{}.yaml", base.revision)).exists(),
        "the base revision is kept"
    );

    // ttlSecondsAfterFinished is honoured: the finished apply Jobs go, the memory stays.
    let jobs = ns.api::<k8s_openapi::api::batch::v1::Job>();
    reverie_e2e::within(reverie_e2e::TIMEOUT, async {
        while jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|j| j.name_any().contains("memory-apply") && j.metadata.deletion_timestamp.is_none())
        {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the TTL controller deletes the finished apply Jobs");
    let agent = agents.get("support").await.unwrap();
    assert_eq!(
        agent.status.unwrap().memory.unwrap().revision,
        base.revision + 1,
        "the memory outlives its apply Jobs"
    );
    drop(operator);
    ns.delete().await.unwrap();
}

/// `kubectl apply -f` of a manifest, as Argo CD or Flux would apply a merged pull request.
fn kubectl_apply(namespace: &str, manifest: &MemoryProposal) {
    let path = std::env::temp_dir().join(format!("reverie-e2e-{namespace}-{}.yaml", manifest.name_any()));
    std::fs::write(&path, serde_yaml::to_string(manifest).unwrap()).unwrap();
    reverie_e2e::kubectl_apply(namespace, &path).unwrap();
}

#[tokio::test]
async fn an_approved_manifest_from_git_is_applied_only_when_its_digest_matches() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "gitops").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "gitops").await.unwrap();
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    let support = AgentBuilder::new("support").build();
    apply(&agents, &support).await.unwrap();
    let ready = wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let base = ready.status.unwrap().memory.unwrap();

    // What the reviewer merged: the proposal with `spec.approval` bound to its content digest.
    let mut merged = proposal("support-merged", 1, &base.digest, "Quote the invoice number.");
    let digest = merged.spec.content_digest();
    merged.spec.approval =
        serde_json::from_value(json!({"decision": "Approved", "reviewer": "ana", "digest": digest})).unwrap();
    kubectl_apply(&ns.name, &merged);
    let applied = wait_phase(&proposals, "support-merged", Phase::Applied)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(applied.applied_revision, Some(2));
    assert_eq!(applied.approved_by.as_deref(), Some("ana"));

    // Content changed in the pull request after review: its approval names another digest.
    let mut altered = proposal(
        "support-altered",
        2,
        "sha256:x",
        "Quote the invoice number and refund at once.",
    );
    altered.spec.approval =
        serde_json::from_value(json!({"decision": "Approved", "reviewer": "ana", "digest": digest})).unwrap();
    kubectl_apply(&ns.name, &altered);
    let failed = wait_phase(&proposals, "support-altered", Phase::Failed).await.unwrap();
    let reason = reverie_e2e::condition(&failed, "Applied").unwrap().reason.clone();
    assert_eq!(reason, "ApprovalDigestMismatch");
    let memory = ns.api::<ConfigMap>().get("support-memory").await.unwrap();
    assert!(!memory_md(&memory).contains("refund at once"));
    drop(operator);
    ns.delete().await.unwrap();
}

/// `error` is the API server refusing a write with `code`, saying `says`.
fn assert_refused(error: &kube::Error, code: u16, says: &str) {
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, code, "{status:?}");
            assert!(
                status.message.contains(says),
                "{:?} does not say {says:?}",
                status.message
            );
        }
        other => panic!("expected the API server to refuse with {code}, got {other}"),
    }
}
