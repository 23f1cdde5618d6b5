//! Agent memory on a real API server: ConfigMap revisions, the runtime Deployment, garbage
//! collection, the size limit, and PVC memories written by apply Jobs on the process node.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt};
use reverie::api::Agent;
use reverie_api::test_support::AgentBuilder;
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, condition, has_condition, install_crds, wait_for, wait_revision,
    within,
};
use serde_json::{Value, json};

fn data<'a>(configmap: &'a ConfigMap, key: &str) -> &'a str {
    configmap
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(String::as_str)
        .unwrap_or_default()
}

#[tokio::test]
async fn memory_revisions_live_in_configmaps() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "memory").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "memory").await.unwrap();
    let agents = ns.api::<Agent>();
    let configmaps = ns.api::<ConfigMap>();

    apply(&agents, &AgentBuilder::new("support").build()).await.unwrap();
    let first = wait_revision(&agents, "support", 1).await.unwrap();
    let memory = configmaps.get("support-memory").await.unwrap();
    assert!(data(&memory, "MEMORY.md").contains("Help customers with billing."));
    let status = first.status.unwrap().memory.unwrap();
    assert_eq!(memory.annotations()["reverie.dev/digest"], status.digest);
    assert_eq!(memory.annotations()["reverie.dev/revision"], "1");
    let snapshot = configmaps.get("support-memory-r1").await.unwrap();
    assert_eq!(snapshot.immutable, Some(true));

    // New instructions are a new revision; the previous one is kept for rollback.
    apply(
        &agents,
        &AgentBuilder::new("support")
            .instructions("Help customers with billing. Be brief.")
            .build(),
    )
    .await
    .unwrap();
    let second = wait_revision(&agents, "support", 2).await.unwrap();
    assert!(data(&configmaps.get("support-memory").await.unwrap(), "MEMORY.md").contains("Be brief."));
    assert!(configmaps.get_opt("support-memory-r1").await.unwrap().is_some());
    assert!(configmaps.get_opt("support-memory-r2").await.unwrap().is_some());
    assert_ne!(second.status.unwrap().memory.unwrap().digest, status.digest);
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn runtime_mounts_memory_read_only_and_rolls_on_a_new_revision() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "runtime").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "runtime").await.unwrap();
    let agents = ns.api::<Agent>();
    let sessions = std::env::temp_dir().join(format!("reverie-e2e-sessions-{}", ns.name));
    std::fs::create_dir_all(&sessions).unwrap();
    // A team memory shared with the agent, mounted read-only next to its own.
    apply(
        &agents,
        &AgentBuilder::new("team").instructions("Team conventions.").build(),
    )
    .await
    .unwrap();
    let with_runtime = |instructions: &str| {
        AgentBuilder::new("support")
            .instructions(instructions)
            .runtime(
                "agent-runtime:1",
                &["sh", "-c", "test -s /var/lib/reverie/memory/MEMORY.md && test -s /var/lib/reverie/shared/team/MEMORY.md && while true; do sleep 1; done"],
            )
            .sessions_host_path(&sessions)
            .sessions_subpath("support")
            .shared_memory("team")
            .build()
    };
    apply(&agents, &with_runtime("Help customers.")).await.unwrap();
    let ready = wait_for(
        &agents,
        "support",
        "RuntimeReady",
        has_condition("RuntimeReady", "True"),
    )
    .await
    .unwrap();
    let digest = ready.status.unwrap().memory.unwrap().digest;

    let deployment = ns.api::<Deployment>().get("support").await.unwrap();
    let template = deployment.spec.unwrap().template;
    assert_eq!(
        template.metadata.unwrap().annotations.unwrap()["reverie.dev/memory-digest"],
        digest
    );
    let pod = template.spec.unwrap();
    let container = &pod.containers[0];
    let mount = |path: &str| {
        container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == path)
            .cloned()
            .unwrap()
    };
    assert_eq!(mount("/var/lib/reverie/memory").read_only, Some(true));
    assert_eq!(mount("/var/lib/reverie/sessions").sub_path.as_deref(), Some("support"));
    assert_eq!(mount("/var/lib/reverie/shared/team").read_only, Some(true));
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");

    // A new revision changes the pod template, so the Deployment rolls.
    apply(&agents, &with_runtime("Help customers. Never share account numbers."))
        .await
        .unwrap();
    let rolled = wait_revision(&agents, "support", 2).await.unwrap();
    let new_digest = rolled.status.unwrap().memory.unwrap().digest;
    let deployments = ns.api::<Deployment>();
    wait_for(
        &deployments,
        "support",
        "the new digest in the pod template",
        |d: Option<&Deployment>| {
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
            .is_some_and(|d| d == new_digest)
        },
    )
    .await
    .unwrap();
    wait_for(
        &agents,
        "support",
        "RuntimeReady after the roll",
        has_condition("RuntimeReady", "True"),
    )
    .await
    .unwrap();
    drop(operator);
    ns.delete().await.unwrap();
    let _ = std::fs::remove_dir_all(sessions);
}

#[tokio::test]
async fn deleting_an_agent_removes_what_it_owned() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "gc").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "gc").await.unwrap();
    let agents = ns.api::<Agent>();
    let with_runtime = AgentBuilder::new("support")
        .instructions("Help.")
        .runtime("agent-runtime:1", &["sh", "-c", "while true; do sleep 1; done"])
        .build();
    apply(&agents, &with_runtime).await.unwrap();
    wait_revision(&agents, "support", 1).await.unwrap();
    let configmaps = ns.api::<ConfigMap>();
    let owned_uid = configmaps.get("support-memory").await.unwrap().uid().unwrap();
    let snapshot_uid = configmaps.get("support-memory-r1").await.unwrap().uid().unwrap();
    let deployments = ns.api::<Deployment>();
    let deployment = wait_for(
        &deployments,
        "support",
        "the Deployment exists",
        |d: Option<&Deployment>| d.is_some(),
    )
    .await
    .unwrap();

    agents.delete("support", &DeleteParams::background()).await.unwrap();
    // The real garbage collector removes everything the Agent owned. It learns about a new
    // CRD's kind through discovery every 30 s, so on a fresh cluster this can take a while.
    const GC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);
    within(
        GC_TIMEOUT,
        await_condition(configmaps.clone(), "support-memory", conditions::is_deleted(&owned_uid)),
    )
    .await
    .unwrap()
    .unwrap();
    within(
        GC_TIMEOUT,
        await_condition(configmaps, "support-memory-r1", conditions::is_deleted(&snapshot_uid)),
    )
    .await
    .unwrap()
    .unwrap();
    within(
        GC_TIMEOUT,
        await_condition(
            deployments,
            "support",
            conditions::is_deleted(&deployment.uid().unwrap()),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn a_memory_too_large_for_a_configmap_points_to_the_pvc_store() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "large").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "large").await.unwrap();
    let agents = ns.api::<Agent>();
    // The instructions land in memory.yaml and MEMORY.md: together over the ConfigMap limit.
    let huge = "Answer precisely and cite the policy section. ".repeat(11_000);
    apply(&agents, &AgentBuilder::new("support").instructions(&huge).build())
        .await
        .unwrap();
    let refused = wait_for(
        &agents,
        "support",
        "MemoryReady=False",
        has_condition("MemoryReady", "False"),
    )
    .await
    .unwrap();
    let memory_ready = condition(&refused, "MemoryReady").unwrap();
    assert_eq!(memory_ready.reason, "MemoryTooLarge");
    assert!(
        memory_ready.message.contains("persistentVolumeClaim"),
        "{}",
        memory_ready.message
    );
    assert!(memory_ready.message.contains("nothing was truncated"));
    assert!(ns.api::<ConfigMap>().get_opt("support-memory").await.unwrap().is_none());
    drop(operator);
    ns.delete().await.unwrap();
}

/// The directory on this machine that backs a bound claim (the process node binds claims to
/// hostPath volumes).
async fn claim_dir(client: &kube::Client, ns: &TestNamespace, claim: &str) -> std::path::PathBuf {
    let claims = ns.api::<PersistentVolumeClaim>();
    let bound = wait_for(
        &claims,
        claim,
        "the claim is bound",
        |c: Option<&PersistentVolumeClaim>| c.and_then(|c| c.spec.as_ref()?.volume_name.clone()).is_some(),
    )
    .await
    .unwrap();
    let volume = bound.spec.unwrap().volume_name.unwrap();
    let pv = Api::<PersistentVolume>::all(client.clone()).get(&volume).await.unwrap();
    std::path::PathBuf::from(
        pv.spec
            .unwrap()
            .host_path
            .expect("process-node volumes are hostPath")
            .path,
    )
}

#[tokio::test]
async fn pvc_memory_is_written_atomically_by_an_idempotent_apply_job() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "pvc").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "pvc").await.unwrap();
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
    let on_the_claim = |instructions: &str| {
        AgentBuilder::new("support")
            .instructions(instructions)
            .pvc_memory("memories", "support")
            .build()
    };
    apply(&agents, &on_the_claim("Help customers.")).await.unwrap();
    wait_revision(&agents, "support", 1).await.unwrap();

    apply(&agents, &on_the_claim("Help customers. Be brief."))
        .await
        .unwrap();
    let second = wait_revision(&agents, "support", 2).await.unwrap();
    let dir = claim_dir(&client, &ns, "memories").await.join("support");
    let current = std::fs::read_to_string(dir.join("current.json")).unwrap();
    assert!(
        std::fs::read_to_string(dir.join("MEMORY.md"))
            .unwrap()
            .contains("Be brief.")
    );
    assert!(dir.join("revisions/r1.yaml").exists() && dir.join("revisions/r2.yaml").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(
        second.status.unwrap().memory.unwrap().digest,
        serde_json::from_str::<Value>(&current).unwrap()["digest"]
    );

    // Running the revision-2 apply Job a second time changes nothing.
    let jobs = ns.api::<Job>();
    let applied = jobs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|j| j.name_any().contains("memory-apply-r2"))
        .expect("the apply Job of revision 2");
    let mut again = applied.clone();
    again.metadata = kube::api::ObjectMeta {
        name: Some(format!("{}-again", applied.name_any())),
        ..Default::default()
    };
    let template = &mut again.spec.as_mut().unwrap();
    template.selector = None;
    if let Some(labels) = template.template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        // The Job controller's own labels (legacy and batch.kubernetes.io/ forms) name the old Job.
        labels.retain(|k, _| !k.contains("controller-uid") && !k.ends_with("job-name"));
    }
    jobs.create(&PostParams::default(), &again).await.unwrap();
    let done = wait_for(
        &jobs,
        &again.name_any(),
        "the second run finishes",
        |j: Option<&Job>| j.and_then(|j| j.status.as_ref()?.succeeded).unwrap_or(0) >= 1,
    )
    .await
    .unwrap();
    assert!(done.status.unwrap().succeeded.unwrap_or(0) >= 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("current.json")).unwrap(),
        current,
        "a second run must not write"
    );
    assert!(!dir.join("revisions/r3.yaml").exists());
    drop(operator);
    ns.delete().await.unwrap();
}
