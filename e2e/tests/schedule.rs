//! DreamSchedules on a real API server with the process node: run-now passes that read a
//! sessions folder and create a MemoryProposal, the concurrency policies, suspension and
//! missed runs, history limits, failing passes, and the dreamer's limited RBAC.

use std::net::TcpListener;
use std::path::PathBuf;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use reverie::api::dream_schedule::{AgentRun, ConcurrencyPolicy, DreamJobTemplate, Reflector, ReflectorProvider};
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::{AgentBuilder, DreamScheduleBuilder};
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, dreaming_agent, has_condition, install_crds, wait_for,
};
use serde_json::json;

/// A copy of `examples/sessions` (the transcripts the README's demo dreams over).
fn sessions_copy(name: &str) -> PathBuf {
    reverie_e2e::copy_example_sessions(&std::env::temp_dir().join(format!("reverie-e2e-{name}")))
}

/// A model endpoint (OpenAI-compatible, model `m`) at `endpoint`, for passes that must hang or
/// fail there.
fn openai_at(endpoint: String) -> Reflector {
    Reflector {
        provider: ReflectorProvider::OpenAi,
        model: Some("m".into()),
        endpoint: Some(endpoint),
        ..Reflector::default()
    }
}

async fn dream_now(api: &Api<DreamSchedule>, name: &str, value: &str) {
    reverie_e2e::dream_now(api, name, value).await.unwrap();
}

fn last_run<'a>(schedule: Option<&'a DreamSchedule>, agent: &str) -> Option<&'a AgentRun> {
    schedule?.status.as_ref()?.last_runs.iter().find(|r| r.agent == agent)
}

/// Waits until the agent's last run of `schedule` has `result` (and, when given, ran `job`).
async fn wait_run(api: &Api<DreamSchedule>, schedule: &str, agent: &str, result: &str, job: Option<&str>) -> AgentRun {
    let agent_owned = agent.to_string();
    let (result_owned, job_owned) = (result.to_string(), job.map(str::to_string));
    let found = wait_for(
        api,
        schedule,
        &format!("{agent} run {result}"),
        move |s: Option<&DreamSchedule>| {
            last_run(s, &agent_owned)
                .is_some_and(|r| r.result == result_owned && job_owned.as_ref().is_none_or(|j| &r.job == j))
        },
    )
    .await
    .unwrap();
    last_run(Some(&found), agent).cloned().unwrap()
}

async fn job_names(jobs: &Api<Job>, schedule: &str) -> Vec<String> {
    let mut names: Vec<String> = jobs
        .list(&ListParams::default().labels(&format!("reverie.dev/schedule={schedule}")))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

/// Waits until Job `name` is gone (or being deleted).
async fn wait_deleted(jobs: &Api<Job>, name: &str) {
    let Some(job) = jobs.get_opt(name).await.unwrap() else {
        return;
    };
    if job.metadata.deletion_timestamp.is_some() {
        return;
    }
    let uid = job.uid().unwrap();
    let gone =
        kube::runtime::wait::await_condition(jobs.clone(), name, kube::runtime::wait::conditions::is_deleted(&uid));
    reverie_e2e::within(reverie_e2e::TIMEOUT, gone).await.unwrap().unwrap();
}

async fn setup(prefix: &str) -> (Client, TestNamespace, OperatorProcess) {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, prefix).await.unwrap();
    let operator = OperatorProcess::start(&ns.name, prefix).await.unwrap();
    (client, ns, operator)
}

#[tokio::test]
async fn run_now_reads_the_sessions_folder_and_creates_a_proposal_with_evidence() {
    let (_client, ns, operator) = setup("dream-now").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let sessions = sessions_copy(&ns.name);
    let empty = std::env::temp_dir().join(format!("reverie-e2e-{}-empty", ns.name));
    std::fs::create_dir_all(&empty).unwrap();
    apply(&agents, &dreaming_agent("support", &sessions)).await.unwrap();
    apply(&agents, &dreaming_agent("quiet", &empty)).await.unwrap();
    wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    wait_for(&agents, "quiet", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    apply(
        &schedules,
        &DreamScheduleBuilder::new("nightly")
            .agents(&["support", "quiet"])
            .build(),
    )
    .await
    .unwrap();
    let ready = wait_for(&schedules, "nightly", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    assert!(ready.status.unwrap().next_schedule_time.is_some());

    dream_now(&schedules, "nightly", "1").await;
    let run = wait_run(&schedules, "nightly", "support", "Succeeded", None).await;
    let proposal_name = run.proposal.clone().expect("a proposal was created");
    assert_eq!(proposal_name, run.job);
    assert!(run.sessions_reviewed.unwrap() >= 30, "{run:?}");

    let proposal = ns.api::<MemoryProposal>().get(&proposal_name).await.unwrap();
    let spec = &proposal.spec;
    assert_eq!(spec.agent_ref.name, "support");
    assert_eq!(spec.base_revision, 1);
    let source = spec.source.as_ref().unwrap();
    assert_eq!(
        (source.dream_schedule.as_deref(), source.job.as_deref()),
        (Some("nightly"), Some(run.job.as_str()))
    );
    assert!(!spec.changes.is_empty());
    assert!(
        spec.changes
            .iter()
            .all(|c| c.evidence.as_ref().is_some_and(|e| e.count >= 3)),
        "every change carries counted evidence"
    );
    let owner = &proposal.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Agent", "support"));
    // Proposing never touches memory.
    let memory = ns.api::<ConfigMap>().get("support-memory").await.unwrap();
    assert_eq!(memory.annotations()["reverie.dev/revision"], "1");

    // An agent with nothing to review gets no proposal, and the status says so.
    let quiet = wait_run(&schedules, "nightly", "quiet", "Succeeded", None).await;
    assert_eq!(quiet.proposal, None);
    assert!(quiet.message.unwrap().contains("no sessions"), "{:?}", quiet.job);
    drop(operator);
    ns.delete().await.unwrap();
}

/// A reflector endpoint that accepts connections and never answers: passes using it run
/// until their deadline, which is what the concurrency tests need.
fn silent_endpoint() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test]
async fn forbid_skips_a_second_pass_and_replace_replaces_the_running_one() {
    let (_client, ns, operator) = setup("concurrency").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let jobs = ns.api::<Job>();
    let sessions = sessions_copy(&ns.name);
    let (_listener, endpoint) = silent_endpoint();
    apply(&agents, &dreaming_agent("support", &sessions)).await.unwrap();
    wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let slow = DreamScheduleBuilder::new("slow").spec(|spec| {
        spec.reflector = openai_at(endpoint);
        spec.job_template = Some(DreamJobTemplate {
            backoff_limit: Some(0),
            ..DreamJobTemplate::default()
        });
    });
    apply(&schedules, &slow.clone().build()).await.unwrap();
    wait_for(&schedules, "slow", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();

    dream_now(&schedules, "slow", "1").await;
    let first = wait_run(&schedules, "slow", "support", "Running", None).await.job;
    dream_now(&schedules, "slow", "2").await;
    let skipped = wait_run(&schedules, "slow", "support", "Skipped", None).await;
    assert_eq!(skipped.job, first);
    assert!(skipped.message.unwrap().contains("still running"));
    assert_eq!(job_names(&jobs, "slow").await, std::slice::from_ref(&first));

    let replace = slow.spec(|spec| spec.concurrency_policy = ConcurrencyPolicy::Replace);
    apply(&schedules, &replace.build()).await.unwrap();
    dream_now(&schedules, "slow", "3").await;
    let second = wait_for(&schedules, "slow", "a replacing pass", |s: Option<&DreamSchedule>| {
        last_run(s, "support").is_some_and(|r| r.result == "Running" && r.job.contains("-now-"))
            && s.and_then(|s| s.status.as_ref())
                .is_some_and(|st| st.active.len() == 1 && st.last_dream_now.as_deref() == Some("3"))
    })
    .await
    .unwrap();
    let second = last_run(Some(&second), "support").unwrap().job.clone();
    assert_ne!(second, first);
    wait_deleted(&jobs, &first).await;
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn a_failing_pass_fails_its_job_with_a_message_and_leaves_memory_alone() {
    let (_client, ns, operator) = setup("failing").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let sessions = sessions_copy(&ns.name);
    // A port nothing listens on: the reflector's connection is refused.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    apply(&agents, &dreaming_agent("support", &sessions)).await.unwrap();
    wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    // ttlSecondsAfterFinished: Kubernetes deletes the finished Job; the run stays on record.
    let broken = DreamScheduleBuilder::new("broken").spec(|spec| {
        spec.reflector = openai_at(format!("http://127.0.0.1:{closed}"));
        spec.job_template = Some(DreamJobTemplate {
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(2),
            ..DreamJobTemplate::default()
        });
    });
    apply(&schedules, &broken.build()).await.unwrap();
    wait_for(&schedules, "broken", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    dream_now(&schedules, "broken", "1").await;
    let failed = wait_run(&schedules, "broken", "support", "Failed", None).await;
    let message = failed.message.clone().unwrap();
    assert!(message.contains("reflector"), "{message}");
    assert_eq!(failed.proposal, None);
    // The history limit keeps the one failed Job, so only the TTL controller deletes it.
    let jobs = ns.api::<Job>();
    let job = failed.job.clone();
    wait_deleted(&jobs, &job).await;
    let kept = schedules.get("broken").await.unwrap();
    assert_eq!(
        last_run(Some(&kept), "support"),
        Some(&failed),
        "the run outlives its Job"
    );
    assert!(
        job_names(&jobs, "broken").await.iter().all(|name| *name == job),
        "no pass started again"
    );
    let memory = ns.api::<ConfigMap>().get("support-memory").await.unwrap();
    assert_eq!(memory.annotations()["reverie.dev/revision"], "1");
    assert!(
        ns.api::<MemoryProposal>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn history_limits_delete_old_jobs() {
    let (_client, ns, operator) = setup("history").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let jobs = ns.api::<Job>();
    let empty = std::env::temp_dir().join(format!("reverie-e2e-{}-empty", ns.name));
    std::fs::create_dir_all(&empty).unwrap();
    apply(&agents, &dreaming_agent("support", &empty)).await.unwrap();
    let kept = DreamScheduleBuilder::new("kept").spec(|spec| spec.successful_jobs_history_limit = 1);
    apply(&schedules, &kept.build()).await.unwrap();
    wait_for(&schedules, "kept", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    dream_now(&schedules, "kept", "1").await;
    let first = wait_run(&schedules, "kept", "support", "Succeeded", None).await.job;
    dream_now(&schedules, "kept", "2").await;
    let second = wait_for(&schedules, "kept", "second pass done", |s: Option<&DreamSchedule>| {
        last_run(s, "support").is_some_and(|r| r.result == "Succeeded" && r.job.contains("-now-"))
            && s.and_then(|s| s.status.as_ref()?.last_dream_now.as_deref()) == Some("2")
    })
    .await
    .unwrap();
    let second = last_run(Some(&second), "support").unwrap().job.clone();
    assert_ne!(first, second);
    wait_deleted(&jobs, &first).await;
    assert_eq!(job_names(&jobs, "kept").await, [second]);
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn suspend_stops_new_passes_and_resuming_starts_the_missed_one() {
    let (_client, ns, operator) = setup("suspend").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let jobs = ns.api::<Job>();
    let empty = std::env::temp_dir().join(format!("reverie-e2e-{}-empty", ns.name));
    std::fs::create_dir_all(&empty).unwrap();
    apply(&agents, &dreaming_agent("support", &empty)).await.unwrap();
    let every_minute = |name: &str| DreamScheduleBuilder::new(name).cron("* * * * *");
    let suspended = every_minute("paused").spec(|spec| spec.suspend = true);
    apply(&schedules, &suspended.build()).await.unwrap();
    apply(&schedules, &every_minute("witness").build()).await.unwrap();
    let paused = wait_for(&schedules, "paused", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    assert_eq!(paused.status.unwrap().next_schedule_time, None);

    // The witness fires at the next minute: by then the paused schedule would have too.
    let witnessed = wait_for(
        &schedules,
        "witness",
        "a scheduled pass",
        |s: Option<&DreamSchedule>| s.and_then(|s| s.status.as_ref()?.last_schedule_time.as_ref()).is_some(),
    );
    reverie_e2e::within(std::time::Duration::from_secs(130), witnessed)
        .await
        .unwrap()
        .unwrap();
    assert!(
        job_names(&jobs, "paused").await.is_empty(),
        "a suspended schedule starts nothing"
    );

    // Resuming starts the most recent missed fire time at once.
    apply(&schedules, &every_minute("paused").build()).await.unwrap();
    let resumed = wait_for(&schedules, "paused", "the missed pass", |s: Option<&DreamSchedule>| {
        s.and_then(|s| s.status.as_ref()?.last_schedule_time.as_ref()).is_some()
    })
    .await
    .unwrap();
    let fired = resumed.status.unwrap().last_schedule_time.unwrap().0;
    let minutes = fired.as_second() / 60;
    assert_eq!(job_names(&jobs, "paused").await, [format!("paused-support-{minutes}")]);
    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn the_dreamer_can_read_its_agent_and_memory_and_nothing_else() {
    let (client, ns, operator) = setup("dreamer-rbac").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let empty = std::env::temp_dir().join(format!("reverie-e2e-{}-empty", ns.name));
    std::fs::create_dir_all(&empty).unwrap();
    apply(&agents, &dreaming_agent("support", &empty)).await.unwrap();
    apply(&agents, &dreaming_agent("other", &empty)).await.unwrap();
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "llm"}, "stringData": {"key": "s3cret"}})).unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    apply(&schedules, &DreamScheduleBuilder::new("nightly").build())
        .await
        .unwrap();
    dream_now(&schedules, "nightly", "1").await;
    wait_run(&schedules, "nightly", "support", "Succeeded", None).await;

    let dreamer = dreamer_client(&client, &ns.name).await;
    let agents_as_dreamer: Api<Agent> = Api::namespaced(dreamer.clone(), &ns.name);
    let configmaps_as_dreamer: Api<ConfigMap> = Api::namespaced(dreamer.clone(), &ns.name);
    agents_as_dreamer.get("support").await.expect("reads its agent");
    configmaps_as_dreamer
        .get("support-memory")
        .await
        .expect("reads its agent's memory");
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    assert!(
        forbidden(agents_as_dreamer.get("other").await.map(|_| ())),
        "another agent"
    );
    assert!(
        forbidden(configmaps_as_dreamer.get("other-memory").await.map(|_| ())),
        "another memory"
    );
    assert!(
        forbidden(configmaps_as_dreamer.list(&ListParams::default()).await.map(|_| ())),
        "listing ConfigMaps"
    );
    let secrets: Api<Secret> = Api::namespaced(dreamer.clone(), &ns.name);
    assert!(forbidden(secrets.get("llm").await.map(|_| ())), "Secrets");
    let elsewhere: Api<ConfigMap> = Api::namespaced(dreamer.clone(), "default");
    assert!(
        forbidden(elsewhere.get("support-memory").await.map(|_| ())),
        "other namespaces"
    );
    let proposals: Api<MemoryProposal> = Api::namespaced(dreamer, &ns.name);
    assert!(
        forbidden(proposals.list(&ListParams::default()).await.map(|_| ())),
        "reading proposals"
    );
    drop(operator);
    ns.delete().await.unwrap();
}

/// A client authenticated as `reverie-dreamer`, with a token from the TokenRequest API.
async fn dreamer_client(admin: &Client, namespace: &str) -> Client {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}})).unwrap();
    let token = accounts
        .create_token_request("reverie-dreamer", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..kube::config::AuthInfo::default()
    };
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn a_collective_pass_pools_agents_and_proposes_to_the_team_memory() {
    let (_client, ns, operator) = setup("collective").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    // Both agents saw the same support traffic; the team agent has no sessions of its own.
    let (first, second) = (
        sessions_copy(&format!("{}-a", ns.name)),
        sessions_copy(&format!("{}-b", ns.name)),
    );
    apply(&agents, &dreaming_agent("alpha", &first)).await.unwrap();
    apply(&agents, &dreaming_agent("beta", &second)).await.unwrap();
    let team = AgentBuilder::new("team").instructions("Team conventions.").build();
    apply(&agents, &team).await.unwrap();
    wait_for(&agents, "team", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    let pooled = DreamScheduleBuilder::new("pooled")
        .agents(&["alpha", "beta"])
        .collective("team", 2);
    apply(&schedules, &pooled.build()).await.unwrap();
    wait_for(&schedules, "pooled", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    dream_now(&schedules, "pooled", "1").await;
    let run = wait_run(&schedules, "pooled", "team", "Succeeded", None).await;
    let proposal = ns
        .api::<MemoryProposal>()
        .get(&run.proposal.expect("a proposal for the team memory"))
        .await
        .unwrap();
    assert_eq!(proposal.spec.agent_ref.name, "team");
    assert!(proposal.spec.summary.contains("2 agents"), "{}", proposal.spec.summary);
    let sessions: Vec<&String> = proposal
        .spec
        .changes
        .iter()
        .filter_map(|c| c.evidence.as_ref())
        .flat_map(|e| &e.sessions)
        .collect();
    assert!(sessions.iter().any(|s| s.starts_with("alpha/")), "{sessions:?}");
    assert!(sessions.iter().any(|s| s.starts_with("beta/")), "{sessions:?}");
    drop(operator);
    ns.delete().await.unwrap();
}

/// A Warning event about `agent` with `reason`, if one was recorded.
async fn agent_event(ns: &TestNamespace, agent: &str, reason: &str) -> Option<k8s_openapi::api::events::v1::Event> {
    ns.api::<k8s_openapi::api::events::v1::Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding
                    .as_ref()
                    .is_some_and(|r| r.kind.as_deref() == Some("Agent") && r.name.as_deref() == Some(agent))
        })
}

#[tokio::test]
async fn hostile_transcripts_raise_a_suspected_injection_warning_and_nothing_hostile_is_applied() {
    let (_client, ns, operator) = setup("hostile").await;
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let sessions = std::env::temp_dir().join(format!("reverie-e2e-{}-hostile", ns.name));
    let _ = std::fs::remove_dir_all(&sessions);
    let truth = reverie_dev::hostile::generate(&reverie_dev::hostile::HostileConfig::default(), &sessions)
        .expect("hostile corpus");
    // An Automatic agent whose owner even trusts customers with rules: the worst case.
    let mut target = dreaming_agent("exposed", &sessions);
    target.spec.dreaming = serde_json::from_value(json!({
        "approval": "Automatic", "autoApprove": {"minEvidence": 3, "maxChanges": 20},
        "ruleSources": {"customers": true}
    }))
    .unwrap();
    apply(&agents, &target).await.unwrap();
    wait_for(&agents, "exposed", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();
    apply(
        &schedules,
        &DreamScheduleBuilder::new("nightly")
            .agents(&["exposed"])
            .spec(|spec| spec.lookback.sessions = 1000)
            .build(),
    )
    .await
    .unwrap();
    wait_for(&schedules, "nightly", "Ready", has_condition("Ready", "True"))
        .await
        .unwrap();
    dream_now(&schedules, "nightly", "1").await;
    let run = wait_run(&schedules, "nightly", "exposed", "Succeeded", None).await;

    // The owner sees it where they look: a Warning event on the Agent naming the classes.
    let event = reverie_e2e::within(reverie_e2e::TIMEOUT, async {
        loop {
            if let Some(event) = agent_event(&ns, "exposed", "SuspectedInjection").await {
                return event;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a SuspectedInjection event on the Agent");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(note.contains(&run.job), "{note}");
    assert!(note.contains("sessions"), "{note}");

    // Whatever was proposed and applied automatically, nothing hostile reached memory.
    let proposal_name = run.proposal.expect("the benign team rules are proposed");
    let proposals = ns.api::<MemoryProposal>();
    let proposal = wait_for(&proposals, &proposal_name, "Applied", has_condition("Applied", "True"))
        .await
        .unwrap();
    let texts: Vec<String> = proposal
        .spec
        .changes
        .iter()
        .filter_map(|c| c.after.as_deref().map(str::to_lowercase))
        .collect();
    assert!(!texts.is_empty());
    let memory = ns.api::<ConfigMap>().get("exposed-memory").await.unwrap();
    let loaded = serde_json::to_string(&memory.data).unwrap().to_lowercase();
    for item in &truth.items {
        for marker in &item.markers {
            assert!(
                !texts.iter().any(|t| t.contains(marker.as_str())) && !loaded.contains(marker.as_str()),
                "{} ({marker}) reached memory",
                item.id
            );
        }
    }
    assert!(
        truth
            .controls
            .iter()
            .any(|c| c.markers.iter().any(|m| loaded.contains(m.as_str()))),
        "the benign reviewer rules are learned"
    );
    drop(operator);
    ns.delete().await.unwrap();
    let _ = std::fs::remove_dir_all(&sessions);
}
