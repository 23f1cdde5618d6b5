//! The GitOps loop on the local control plane: a dream Job pushes its MemoryProposal manifest
//! to a branch of a Git repository (a bare repository over `file://`); a reviewer sets
//! `spec.approval` in that manifest and "merges"; `kubectl apply -f` brings it into the cluster
//! as Argo CD or Flux would; the operator applies it. A manifest edited on the way is refused.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::ConfigMap;
use reverie::api::memory_proposal::Phase;
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::DreamScheduleBuilder;
use reverie_api::test_support::git::git;
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, dreaming_agent, has_condition, install_crds, kubectl_apply,
    wait_for, wait_phase,
};
use serde_json::{Value, json};

/// Where the test keeps its repositories and sessions: outside /tmp (the clone itself may be
/// there), because dream pods get their own /tmp.
fn scratch() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/reverie/e2e-git")
}

/// A bare repository with one commit on `main`.
fn bare_repository(name: &str) -> PathBuf {
    let root = scratch().join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let origin = reverie_api::test_support::git::bare_repository(&root);
    reverie_api::test_support::git::seed_main(&origin);
    origin
}

/// Sessions outside /tmp too: the process node resolves hostPath sources inside the pod's mount
/// namespace, where the dream pod's own /tmp (an emptyDir) hides the host's.
fn sessions_copy(name: &str) -> PathBuf {
    reverie_e2e::copy_example_sessions(&scratch().join(format!("{name}-sessions")))
}

#[tokio::test]
async fn a_dream_pushed_to_git_and_merged_approved_is_applied() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "gitops-loop").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "gitops-loop").await.unwrap();
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let proposals = ns.api::<MemoryProposal>();
    let origin = bare_repository(&ns.name);
    let sessions = sessions_copy(&ns.name);

    apply(&agents, &dreaming_agent("support", &sessions)).await.unwrap();
    wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let repository = format!("file://{}", origin.display());
    let schedule = DreamScheduleBuilder::new("nightly")
        .spec(|spec| {
            spec.output =
                serde_json::from_value(json!({"git": {"repository": repository, "path": "proposals"}})).unwrap()
        })
        .build();
    apply(&schedules, &schedule).await.unwrap();
    let run = reverie_e2e::first_pass(&schedules, "nightly", "support").await.unwrap();
    assert_eq!(run.result, "Succeeded", "{:?}", run.message);
    let name = run.proposal.clone().expect("the pass names its proposal");
    assert!(
        proposals.get_opt(&name).await.unwrap().is_none(),
        "git output creates nothing in the cluster"
    );

    // The reviewer's side: check out the proposal branch, approve in the manifest, merge.
    let branch = format!("reverie/{}/{name}", ns.name);
    let clone = origin.parent().unwrap().join("review");
    git(
        origin.parent().unwrap(),
        &[
            "clone",
            "--quiet",
            "--branch",
            &branch,
            origin.to_str().unwrap(),
            "review",
        ],
    );
    let file = clone.join("proposals").join(&ns.name).join(format!("{name}.yaml"));
    let mut manifest: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let digest = manifest["metadata"]["annotations"]["reverie.dev/content-digest"]
        .as_str()
        .unwrap()
        .to_string();
    manifest["spec"]["approval"] = json!({"decision": "Approved", "reviewer": "ana", "digest": digest});
    std::fs::write(&file, serde_yaml::to_string(&manifest).unwrap()).unwrap();
    kubectl_apply(&ns.name, &file).unwrap();

    let applied = wait_phase(&proposals, &name, Phase::Applied).await.unwrap();
    assert_eq!(applied.status.unwrap().applied_revision, Some(2));
    let memory = ns.api::<ConfigMap>().get("support-memory").await.unwrap();
    let first_change = manifest["spec"]["changes"][0]["after"].as_str().unwrap().to_string();
    assert!(memory.data.unwrap()["MEMORY.md"].contains(&first_change));

    // The same manifest with its content edited in the pull request: not what was proposed.
    manifest["metadata"]["name"] = json!(format!("{name}-edited"));
    manifest["spec"]["summary"] = json!("Edited in the pull request.");
    std::fs::write(&file, serde_yaml::to_string(&manifest).unwrap()).unwrap();
    kubectl_apply(&ns.name, &file).unwrap();
    let refused = wait_for(
        &proposals,
        &format!("{name}-edited"),
        "refused",
        |p: Option<&MemoryProposal>| {
            p.and_then(|p| p.status.as_ref()?.phase)
                .is_some_and(|phase| phase == Phase::Tampered || phase == Phase::Failed)
        },
    )
    .await
    .unwrap();
    assert_ne!(refused.status.unwrap().applied_revision, Some(3));
    drop(operator);
    ns.delete().await.unwrap();
}
