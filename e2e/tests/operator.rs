//! `reverie operator`, built from this tree, against a real API server: it reconciles every
//! kind to Ready with observedGeneration, reports invalid objects with a reason, writes nothing
//! when nothing changed, and only the Lease holder acts.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::{DreamScheduleBuilder, MemoryProposalBuilder, lesson};
use reverie_e2e::{
    OperatorProcess, TIMEOUT, TestNamespace, apply, client, condition, dreaming_agent, has_condition, install_crds,
    wait_for, within,
};

/// An agent with a sessions folder, so schedules that select it have something to dream over.
fn agent(name: &str) -> Agent {
    let sessions = std::env::temp_dir().join("reverie-e2e-operator-sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    dreaming_agent(name, &sessions)
}

/// A proposal of one lesson for agent `support`.
fn proposal(name: &str) -> MemoryProposal {
    MemoryProposalBuilder::new(name)
        .summary("Accounts are found by billing id.")
        .change(lesson("Look accounts up by billing id, not email.", 4, &["s-1", "s-2"]))
        .build()
}

async fn events_with_reason(ns: &TestNamespace, reason: &str) -> Vec<Event> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test]
async fn reconciles_every_kind_to_ready_with_observed_generation() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "ready").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "ready").await.unwrap();

    apply(&ns.api::<Agent>(), &agent("support")).await.unwrap();
    apply(
        &ns.api::<DreamSchedule>(),
        &DreamScheduleBuilder::new("nightly").time_zone("Europe/Paris").build(),
    )
    .await
    .unwrap();
    apply(&ns.api::<MemoryProposal>(), &proposal("support-1"))
        .await
        .unwrap();

    let agent = wait_for(&ns.api::<Agent>(), "support", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    assert_eq!(
        agent.status.as_ref().unwrap().observed_generation,
        agent.metadata.generation
    );
    let schedule = wait_for(
        &ns.api::<DreamSchedule>(),
        "nightly",
        "Ready",
        has_condition("Ready", "True"),
    )
    .await
    .unwrap();
    assert_eq!(condition(&schedule, "Accepted").unwrap().status, "True");
    let proposal = wait_for(
        &ns.api::<MemoryProposal>(),
        "support-1",
        "Ready",
        has_condition("Ready", "True"),
    )
    .await
    .unwrap();
    let status = proposal.status.unwrap();
    assert_eq!(status.phase.map(|p| p.as_str()), Some("Pending"));
    assert_eq!(status.digest.as_deref(), Some(proposal.spec.content_digest().as_str()));
    assert_eq!(status.change_count, Some(1));

    assert!(events_with_reason(&ns, "Accepted").await.len() >= 3);
    assert_eq!(
        operator.stop().await.unwrap(),
        Some(0),
        "SIGTERM must stop the operator cleanly"
    );
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn invalid_objects_get_conditions_that_say_why_and_recover() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "invalid").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "invalid").await.unwrap();
    let schedules = ns.api::<DreamSchedule>();

    apply(
        &schedules,
        &DreamScheduleBuilder::new("bad-cron").cron("61 25 * * *").build(),
    )
    .await
    .unwrap();
    let bad = wait_for(
        &schedules,
        "bad-cron",
        "Accepted=False",
        has_condition("Accepted", "False"),
    )
    .await
    .unwrap();
    let accepted = condition(&bad, "Accepted").unwrap();
    assert_eq!(accepted.reason, "InvalidSchedule");
    assert!(accepted.message.contains("61 25 * * *"), "{}", accepted.message);

    apply(
        &schedules,
        &DreamScheduleBuilder::new("bad-zone")
            .cron("@daily")
            .time_zone("Mars/Olympus")
            .build(),
    )
    .await
    .unwrap();
    let zone = wait_for(
        &schedules,
        "bad-zone",
        "Accepted=False",
        has_condition("Accepted", "False"),
    )
    .await
    .unwrap();
    assert_eq!(condition(&zone, "Accepted").unwrap().reason, "UnknownTimeZone");
    assert!(!events_with_reason(&ns, "InvalidSchedule").await.is_empty());

    // A proposal for an agent that does not exist yet is accepted but not ready ...
    let proposals = ns.api::<MemoryProposal>();
    apply(&proposals, &proposal("early")).await.unwrap();
    let early = wait_for(&proposals, "early", "Ready=False", has_condition("Ready", "False"))
        .await
        .unwrap();
    assert_eq!(condition(&early, "Ready").unwrap().reason, "AgentNotFound");
    // ... and becomes ready as soon as the agent appears, without being edited.
    apply(&ns.api::<Agent>(), &agent("support")).await.unwrap();
    wait_for(&proposals, "early", "Ready=True", has_condition("Ready", "True"))
        .await
        .unwrap();

    // Fixing the cron is a new generation, observed and accepted.
    apply(&schedules, &DreamScheduleBuilder::new("bad-cron").build())
        .await
        .unwrap();
    let fixed = wait_for(&schedules, "bad-cron", "Ready=True", has_condition("Ready", "True"))
        .await
        .unwrap();
    assert_eq!(fixed.metadata.generation, Some(2));
    assert_eq!(fixed.status.unwrap().observed_generation, Some(2));
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn reconciling_unchanged_objects_writes_nothing() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "nowrite").await.unwrap();
    let first = OperatorProcess::start(&ns.name, "first").await.unwrap();
    apply(&ns.api::<Agent>(), &agent("support")).await.unwrap();
    apply(
        &ns.api::<DreamSchedule>(),
        &DreamScheduleBuilder::new("nightly").cron("@daily").build(),
    )
    .await
    .unwrap();
    apply(&ns.api::<MemoryProposal>(), &proposal("support-1"))
        .await
        .unwrap();
    wait_for(&ns.api::<Agent>(), "support", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    wait_for(
        &ns.api::<DreamSchedule>(),
        "nightly",
        "Ready",
        has_condition("Ready", "True"),
    )
    .await
    .unwrap();
    wait_for(
        &ns.api::<MemoryProposal>(),
        "support-1",
        "Ready",
        has_condition("Ready", "True"),
    )
    .await
    .unwrap();
    // The agent's status settles once it counts the proposal as pending.
    wait_for(
        &ns.api::<Agent>(),
        "support",
        "one pending proposal",
        |a: Option<&Agent>| a.and_then(|a| a.status.as_ref()?.pending_proposals) == Some(1),
    )
    .await
    .unwrap();
    first.stop().await.unwrap();
    // What the first operator left (it may have written again after Ready, e.g. the agent's
    // pending-proposal count once the proposal appeared): read it once nothing runs.
    let agent = ns.api::<Agent>().get("support").await.unwrap();
    let schedule = ns.api::<DreamSchedule>().get("nightly").await.unwrap();
    let proposal = ns.api::<MemoryProposal>().get("support-1").await.unwrap();

    // A fresh operator reconciles every object once on start. Once it has reconciled at least
    // as many objects as exist, ours were among them, and none may have been rewritten.
    let second = OperatorProcess::start(&ns.name, "second").await.unwrap();
    for (controller, count) in [
        (
            "agent",
            Api::<Agent>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
        ),
        (
            "dreamschedule",
            Api::<DreamSchedule>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
        ),
        (
            "memoryproposal",
            Api::<MemoryProposal>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
        ),
    ] {
        let series = format!("reverie_reconciles_total{{controller=\"{controller}\"}}");
        within(TIMEOUT, async {
            while second.metric(&series).await.unwrap_or(0.0) < count as f64 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{controller}: {e}\n{}", second.log_text()));
    }
    assert_eq!(
        ns.api::<Agent>().get("support").await.unwrap().resource_version(),
        agent.resource_version()
    );
    assert_eq!(
        ns.api::<DreamSchedule>()
            .get("nightly")
            .await
            .unwrap()
            .resource_version(),
        schedule.resource_version()
    );
    assert_eq!(
        ns.api::<MemoryProposal>()
            .get("support-1")
            .await
            .unwrap()
            .resource_version(),
        proposal.resource_version()
    );
    second.stop().await.unwrap();
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn only_the_lease_holder_acts_and_a_standby_takes_over() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "lease").await.unwrap();
    let leader = OperatorProcess::start(&ns.name, "alpha").await.unwrap();
    let mut standby = OperatorProcess::start(&ns.name, "beta").await.unwrap();

    let (_, why) = standby.get("/readyz").await.unwrap();
    assert!(why.contains("standby"), "{why}");
    assert_eq!(leader.metric("reverie_leader").await.unwrap(), 1.0);
    assert_eq!(standby.metric("reverie_leader").await.unwrap(), 0.0);
    let lease = ns.api::<Lease>().get("reverie-operator").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.unwrap().starts_with("alpha"));

    // The leader reconciles; the standby does not touch anything.
    apply(&ns.api::<Agent>(), &agent("first")).await.unwrap();
    wait_for(&ns.api::<Agent>(), "first", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    let agent_reconciles = "reverie_reconciles_total{controller=\"agent\"}";
    assert!(leader.metric(agent_reconciles).await.unwrap() >= 1.0);
    assert_eq!(
        standby.metric(agent_reconciles).await.unwrap(),
        0.0,
        "a standby must not reconcile"
    );

    // The leader stops cleanly and releases the Lease; the standby takes over and acts.
    assert_eq!(leader.stop().await.unwrap(), Some(0));
    within(TIMEOUT, async {
        while standby.metric("reverie_leader").await.unwrap_or(0.0) < 1.0 {
            assert!(!standby.has_exited(), "standby exited: {}", standby.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|e| panic!("standby never led: {e}\n{}", standby.log_text()));
    standby.wait_ready().await.unwrap();
    let holder = ns
        .api::<Lease>()
        .get("reverie-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert!(holder.starts_with("beta"), "{holder}");
    apply(&ns.api::<Agent>(), &agent("second")).await.unwrap();
    wait_for(&ns.api::<Agent>(), "second", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    standby.stop().await.unwrap();
    ns.delete().await.unwrap();
}
