//! DreamSchedule reconciler tests against a scripted API server: the exact requests a fire
//! time, each concurrency policy, suspension, run-now, history limits and a failed pass send.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use jiff::Timestamp;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::Caches;
use super::dream_schedule::{self, runs::expired_jobs};
use super::test_support::{
    Expect, NOW, Seen, assert_status_patch, condition, run_scripted, test_context, test_context_with,
};
use reverie_api::test_support::AgentBuilder;

use crate::api::{Agent, DreamSchedule};

const SCHEDULES: &str = "/apis/reverie.dev/v1alpha1/namespaces/team/dreamschedules";
const JOBS: &str = "/apis/batch/v1/namespaces/team/jobs";
const PODS: &str = "/api/v1/namespaces/team/pods";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn minutes(at: Timestamp) -> i64 {
    at.as_second() / 60
}

/// A schedule firing every five minutes, created eight minutes before [`NOW`] (12:00, a fire
/// time), with `extra` merged into its spec and `status` as its status.
fn schedule(extra: Value, status: Value, annotations: Value) -> DreamSchedule {
    let mut spec = json!({"schedule": "*/5 * * * *", "agents": {"names": ["support"]}});
    if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
        "metadata": {"name": "nightly", "namespace": "team", "generation": 1, "uid": "u-2",
                     "creationTimestamp": "2026-11-20T11:52:00Z", "annotations": annotations},
        "spec": spec,
        "status": status
    }))
    .unwrap()
}

/// Status of a schedule that already handled 11:55 and is valid.
fn handled_1155() -> Value {
    json!({
        "observedGeneration": 1,
        "lastScheduleTime": "2026-11-20T11:55:00Z",
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Valid", "message": "the schedule is valid", "observedGeneration": 1, "lastTransitionTime": "2026-11-20T11:52:00Z"},
            {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "the schedule and its agents are ready", "observedGeneration": 1, "lastTransitionTime": "2026-11-20T11:52:00Z"}
        ]
    })
}

fn support_agent() -> Agent {
    sessions_agent("/data/sessions")
}

/// The agent `support` (model `m`) reading its sessions from `path` of the node.
fn sessions_agent(path: &str) -> Agent {
    AgentBuilder::new("support")
        .namespace("team")
        .uid("a-1")
        .instructions("x")
        .sessions_host_path(path)
        .spec(|spec| spec.model = "m".into())
        .build()
}

fn job(name: &str, created: &str, finished: Option<(&str, &str)>) -> Value {
    let mut job = json!({
        "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"), "creationTimestamp": created,
                     "labels": {"reverie.dev/schedule": "nightly", "reverie.dev/dream-agent": "support"}},
        "spec": {"template": {"spec": {"containers": []}}},
        "status": {}
    });
    if let Some((condition, at)) = finished {
        job["status"] = json!({"conditions": [{"type": condition, "status": "True", "lastTransitionTime": at,
            "message": if condition == "Failed" { "Job has reached the specified backoff limit" } else { "" }}]});
    }
    job
}

/// What the watches list: the agent `support` (when `with_agent`) and the schedule's `jobs`.
fn holding(with_agent: bool, jobs: Vec<Value>) -> Caches {
    let agents = if with_agent { vec![support_agent()] } else { Vec::new() };
    let jobs = jobs
        .into_iter()
        .map(|job| serde_json::from_value(job).unwrap())
        .collect();
    Caches::holding(agents, Vec::new(), jobs)
}

/// The dreamer's ServiceAccount, Role and RoleBinding, all already in place.
fn dreamer_rbac_in_place() -> Vec<Expect> {
    vec![
        Expect::get(
            "/api/v1/namespaces/team/serviceaccounts/reverie-dreamer",
            json!({"metadata": {"name": "reverie-dreamer"}}),
        ),
        Expect::get(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles/nightly-dreamer",
            json!({"metadata": {"name": "nightly-dreamer"}, "rules": [
                {"apiGroups": ["reverie.dev"], "resources": ["agents"], "resourceNames": ["support"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["support-memory"], "verbs": ["get"]},
                {"apiGroups": ["reverie.dev"], "resources": ["memoryproposals"], "verbs": ["create"]}
            ]}),
        ),
        Expect::get(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings/nightly-dreamer",
            json!({"metadata": {"name": "nightly-dreamer"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nightly-dreamer"}}),
        ),
    ]
}

fn create_job() -> Expect {
    Expect::new(Method::POST, JOBS, StatusCode::CREATED, Value::Null)
}

fn status_patch(schedule: &DreamSchedule) -> Expect {
    Expect::patch_status(format!("{SCHEDULES}/nightly/status"), schedule)
}

async fn reconcile(schedule: DreamSchedule, caches: Caches, script: Vec<Expect>) -> (Action, Vec<Seen>) {
    let (ctx, handle) = test_context_with(caches);
    let (result, seen) = run_scripted(handle, script, dream_schedule::reconcile(Arc::new(schedule), ctx)).await;
    (result.expect("reconcile succeeds"), seen)
}

fn requeue_in(duration: Duration) -> Action {
    Action::requeue(duration + Duration::from_millis(1))
}

fn last_run(patch: &Seen) -> &Value {
    &patch.body["status"]["lastRuns"][0]
}

#[tokio::test]
async fn a_due_fire_time_starts_one_deterministic_job_and_requeues_at_the_next() {
    let object = schedule(json!({}), handled_1155(), json!({}));
    let mut script = vec![];
    script.extend(dreamer_rbac_in_place());
    script.extend([create_job(), status_patch(&object), Expect::event("team")]);
    let (action, seen) = reconcile(object, holding(true, vec![]), script).await;

    let created = &seen[3].body;
    assert_eq!(
        created["metadata"]["name"],
        format!("nightly-support-{}", minutes(now()))
    );
    assert_eq!(created["metadata"]["annotations"]["reverie.dev/scheduled-at"], NOW);
    assert_eq!(created["metadata"]["ownerReferences"][0]["kind"], "DreamSchedule");
    let status = &seen[4].body["status"];
    assert_eq!(status["lastScheduleTime"], NOW);
    assert_eq!(status["nextScheduleTime"], "2026-11-20T12:05:00Z");
    assert_eq!(status["active"][0]["name"], created["metadata"]["name"]);
    assert_eq!(last_run(&seen[4])["result"], "Running");
    // Announced once the status that records it landed.
    assert_eq!(seen[5].body["reason"], "DreamStarted");
    assert_eq!(action, requeue_in(Duration::from_secs(300)));
}

#[tokio::test]
async fn forbid_skips_while_a_pass_runs_and_records_why() {
    let object = schedule(json!({}), handled_1155(), json!({}));
    let running = job("nightly-support-old", "2026-11-20T11:55:00Z", None);
    let mut script = vec![];
    script.extend(dreamer_rbac_in_place());
    script.extend([status_patch(&object), Expect::event("team")]);
    let (_, seen) = reconcile(object, holding(true, vec![running]), script).await;

    assert_eq!(seen[4].body["reason"], "DreamSkipped");
    let run = last_run(&seen[3]);
    assert_eq!(run["result"], "Skipped");
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("nightly-support-old is still running"),
        "{run}"
    );
    // The fire time counts as handled: a skipped pass does not start late.
    assert_eq!(seen[3].body["status"]["lastScheduleTime"], NOW);
}

#[tokio::test]
async fn replace_deletes_the_running_pass_before_starting_the_new_one() {
    let object = schedule(json!({"concurrencyPolicy": "Replace"}), handled_1155(), json!({}));
    let running = job("nightly-support-old", "2026-11-20T11:55:00Z", None);
    let mut script = vec![];
    script.extend(dreamer_rbac_in_place());
    script.extend([
        Expect::new(
            Method::DELETE,
            format!("{JOBS}/nightly-support-old"),
            StatusCode::OK,
            json!({}),
        ),
        create_job(),
        status_patch(&object),
        Expect::event("team"),
        Expect::event("team"),
    ]);
    let (_, seen) = reconcile(object, holding(true, vec![running]), script).await;

    assert_eq!(seen[3].body["propagationPolicy"], "Background");
    assert_eq!(seen[6].body["reason"], "DreamReplaced");
    assert_eq!(seen[7].body["reason"], "DreamStarted");
    let active = seen[5].body["status"]["active"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["name"], format!("nightly-support-{}", minutes(now())));
}

#[tokio::test]
async fn allow_runs_a_second_pass_beside_the_first() {
    let object = schedule(json!({"concurrencyPolicy": "Allow"}), handled_1155(), json!({}));
    let running = job("nightly-support-old", "2026-11-20T11:55:00Z", None);
    let mut script = vec![];
    script.extend(dreamer_rbac_in_place());
    script.extend([create_job(), status_patch(&object), Expect::event("team")]);
    let (_, seen) = reconcile(object, holding(true, vec![running]), script).await;
    assert_eq!(seen[4].body["status"]["active"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn suspend_starts_nothing_and_has_no_next_time() {
    let object = schedule(json!({"suspend": true}), handled_1155(), json!({}));
    // Nothing to start, and the status (no next time, last run 11:55) is already right.
    let (action, seen) = reconcile(object, holding(true, vec![]), vec![]).await;
    assert_eq!(seen.len(), 0);
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_new_dream_now_value_starts_a_pass_once() {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!(NOW);
    status["nextScheduleTime"] = json!("2026-11-20T12:05:00Z");
    let object = schedule(json!({}), status.clone(), json!({"reverie.dev/dream-now": "try-1"}));
    let mut script = vec![];
    script.extend(dreamer_rbac_in_place());
    script.extend([create_job(), status_patch(&object), Expect::event("team")]);
    let (_, seen) = reconcile(object, holding(true, vec![]), script).await;
    let name = seen[3].body["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("nightly-support-now-"), "{name}");
    assert_eq!(seen[4].body["status"]["lastDreamNow"], "try-1");

    // The same value again, once the status recorded it: no second pass (the status only
    // learns the running Job's uid).
    let handled = seen[4].body["status"].clone();
    let object = schedule(json!({}), handled, json!({"reverie.dev/dream-now": "try-1"}));
    let running = job(&name, NOW, None);
    let script = vec![status_patch(&object)];
    let (_, seen) = reconcile(object, holding(true, vec![running]), script).await;
    assert!(seen.iter().all(|s| s.method != Method::POST), "no Job created");
    assert_eq!(last_run(&seen[0])["job"], name.as_str());
}

#[tokio::test]
async fn a_pass_started_moments_ago_is_read_from_the_api_until_its_watch_event_arrives() {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!(NOW);
    status["nextScheduleTime"] = json!("2026-11-20T12:05:00Z");
    let name = "nightly-support-29398320";
    let running = job(name, NOW, None);
    // The status a reconcile writes once its Job is cached: the pass is active.
    let object = schedule(json!({}), status, json!({}));
    let (_, seen) = reconcile(
        object,
        holding(true, vec![running.clone()]),
        vec![status_patch(&schedule(json!({}), handled_1155(), json!({})))],
    )
    .await;
    let recorded = seen[0].body["status"].clone();
    assert_eq!(recorded["active"][0]["name"], name);

    // The cache has not seen the Job yet: it is read from the API and the status stands.
    let object = schedule(json!({}), recorded.clone(), json!({}));
    let script = vec![Expect::get(format!("{JOBS}/{name}"), running)];
    let (_, seen) = reconcile(object, holding(true, vec![]), script).await;
    assert_eq!(seen.len(), 1, "one read, no write: {seen:?}");

    // Gone from the API too: no longer active.
    let object = schedule(json!({}), recorded, json!({}));
    let script = vec![Expect::not_found(format!("{JOBS}/{name}")), status_patch(&object)];
    let (_, seen) = reconcile(object, holding(true, vec![]), script).await;
    assert_eq!(seen[1].body["status"]["active"], json!(null));
}

#[tokio::test]
async fn nothing_due_and_nothing_changed_makes_no_write() {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!(NOW);
    status["nextScheduleTime"] = json!("2026-11-20T12:05:00Z");
    let object = schedule(json!({}), status, json!({}));
    let (action, seen) = reconcile(object, holding(true, vec![]), vec![]).await;
    assert_eq!(seen.len(), 0);
    assert_eq!(action, requeue_in(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_failed_pass_is_reported_with_the_pods_message() {
    let (object, failed, pods) = failed_pass();
    let script = vec![Expect::get(PODS, pods), status_patch(&object), Expect::event("team")];
    let (_, seen) = reconcile(object, holding(true, vec![failed]), script).await;
    assert!(
        seen[0].query.contains("job-name%3Dnightly-support-1"),
        "{}",
        seen[0].query
    );
    let run = last_run(&seen[1]);
    assert_eq!(run["result"], "Failed");
    assert!(run["message"].as_str().unwrap().contains("connection refused"));
    assert!(seen[1].body["status"].get("lastSuccessfulTime").is_none());
    assert_eq!(seen[2].body["reason"], "DreamFailed");
    assert!(seen[2].body["note"].as_str().unwrap().contains("connection refused"));
}

#[tokio::test]
async fn a_succeeded_pass_records_its_proposal_and_old_jobs_past_the_limit_are_deleted() {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!(NOW);
    status["nextScheduleTime"] = json!("2026-11-20T12:05:00Z");
    let object = schedule(json!({"successfulJobsHistoryLimit": 1}), status, json!({}));
    let old = job(
        "nightly-support-1",
        "2026-11-20T11:50:00Z",
        Some(("Complete", "2026-11-20T11:51:00Z")),
    );
    let new = job(
        "nightly-support-2",
        "2026-11-20T11:55:00Z",
        Some(("Complete", "2026-11-20T11:56:00Z")),
    );
    let report = r#"{"result":"Proposed","proposal":"nightly-support-2","sessionsReviewed":32,"tokens":0,"message":"proposed 3 changes from 32 sessions"}"#;
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"name": "dream", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "message": report}}}]}
    }]});
    let script = vec![
        Expect::get(PODS, pods),
        Expect::new(
            Method::DELETE,
            format!("{JOBS}/nightly-support-1"),
            StatusCode::OK,
            json!({}),
        ),
        status_patch(&object),
    ];
    let (_, seen) = reconcile(object, holding(true, vec![old, new]), script).await;
    let status = &seen[2].body["status"];
    assert_eq!(status["lastSuccessfulTime"], "2026-11-20T11:56:00Z");
    let run = &status["lastRuns"][0];
    assert_eq!(
        (&run["result"], &run["proposal"], &run["sessionsReviewed"]),
        (&json!("Succeeded"), &json!("nightly-support-2"), &json!(32))
    );
}

#[tokio::test]
async fn a_missing_agent_is_named_in_ready_and_no_job_starts() {
    let object = schedule(json!({}), handled_1155(), json!({}));
    let script = vec![status_patch(&object)];
    let (_, seen) = reconcile(object, holding(false, vec![]), script).await;
    let ready = condition(&seen[0].body, "Ready");
    assert_eq!(ready["reason"], "AgentNotFound");
    assert!(ready["message"].as_str().unwrap().contains("support"));
}

#[test]
fn history_limits_keep_the_newest_per_agent_and_outcome() {
    let parse = |v: Value| serde_json::from_value(v).unwrap();
    let jobs = vec![
        parse(job(
            "s-1",
            "2026-11-20T10:00:00Z",
            Some(("Complete", "2026-11-20T10:01:00Z")),
        )),
        parse(job(
            "s-2",
            "2026-11-20T10:05:00Z",
            Some(("Complete", "2026-11-20T10:06:00Z")),
        )),
        parse(job(
            "s-3",
            "2026-11-20T10:10:00Z",
            Some(("Failed", "2026-11-20T10:11:00Z")),
        )),
        parse(job(
            "s-4",
            "2026-11-20T10:15:00Z",
            Some(("Failed", "2026-11-20T10:16:00Z")),
        )),
        parse(job("s-5", "2026-11-20T10:20:00Z", None)),
    ];
    assert_eq!(expired_jobs(&jobs, 1, 1), ["s-1", "s-3"]);
    assert_eq!(expired_jobs(&jobs, 3, 1), ["s-3"]);
    assert_eq!(expired_jobs(&jobs, 0, 0), ["s-2", "s-1", "s-4", "s-3"]);
}

#[tokio::test]
async fn after_more_than_100_missed_times_only_the_latest_starts_with_a_warning() {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!("2026-11-20T10:00:00Z");
    let object = schedule(json!({"schedule": "* * * * *"}), status, json!({}));
    let mut script = vec![];
    script.extend(dreamer_rbac_in_place());
    script.extend([
        create_job(),
        status_patch(&object),
        Expect::event("team"),
        Expect::event("team"),
    ]);
    let (action, seen) = reconcile(object, holding(true, vec![]), script).await;
    assert_eq!(
        seen[3].body["metadata"]["name"],
        format!("nightly-support-{}", minutes(now()))
    );
    assert_eq!(seen[4].body["status"]["lastScheduleTime"], NOW);
    assert_eq!(seen[5].body["type"], "Warning");
    assert_eq!(seen[5].body["reason"], "TooManyMissedTimes");
    assert_eq!(seen[6].body["reason"], "DreamStarted");
    assert_eq!(action, requeue_in(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_missed_time_past_the_starting_deadline_is_skipped_with_a_warning() {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!("2026-11-20T11:50:00Z");
    // 11:55 was missed; at 12:00 it is 300 s late, past the 60 s deadline.
    let object = schedule(
        json!({"schedule": "55 11 * * *", "startingDeadlineSeconds": 60}),
        status,
        json!({}),
    );
    let script = vec![status_patch(&object), Expect::event("team")];
    let (_, seen) = reconcile(object, holding(true, vec![]), script).await;
    assert_eq!(seen[1].body["reason"], "MissedStartingDeadline");
    assert!(
        seen.iter().all(|s| s.path != JOBS || s.method != Method::POST),
        "nothing started"
    );
    assert_eq!(seen[0].body["status"]["nextScheduleTime"], "2026-11-21T11:55:00Z");
}

/// A failed Job and its pod's report, for a schedule that already handled 12:00.
fn failed_pass() -> (DreamSchedule, Value, Value) {
    let mut status = handled_1155();
    status["lastScheduleTime"] = json!(NOW);
    status["nextScheduleTime"] = json!("2026-11-20T12:05:00Z");
    let object = schedule(json!({}), status, json!({}));
    let failed = job(
        "nightly-support-1",
        "2026-11-20T11:55:00Z",
        Some(("Failed", "2026-11-20T11:57:00Z")),
    );
    let report = r#"{"result":"Failed","message":"the reflector failed: connection refused"}"#;
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"name": "dream", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "message": report}}}]}
    }]});
    (object, failed, pods)
}

const FAILED_COUNTED: &str = "dream_jobs_finished_total{result=\"Failed\"} 1";

#[tokio::test]
async fn a_failed_pass_is_told_once_even_when_the_first_status_write_fails() {
    let (object, failed, pods) = failed_pass();
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
        "code": 409, "message": "the object has been modified"});
    let (ctx, handle) = test_context_with(holding(true, vec![failed.clone()]));
    let script = vec![
        Expect::get(PODS, pods.clone()),
        Expect::new(
            Method::PATCH,
            format!("{SCHEDULES}/nightly/status"),
            StatusCode::CONFLICT,
            conflict,
        ),
    ];
    let (result, seen) = run_scripted(
        handle,
        script,
        dream_schedule::reconcile(Arc::new(object.clone()), ctx.clone()),
    )
    .await;
    assert!(result.is_err(), "the failed write is retried");
    assert!(
        seen.iter().all(|s| !s.path.contains("/events")),
        "nothing told before status landed"
    );
    assert!(!ctx.metrics.encode().contains(FAILED_COUNTED));

    // The retry sees the same status (the write did not land): now it lands, then it is told.
    let (ctx, handle) = test_context_with(holding(true, vec![failed]));
    let script = vec![Expect::get(PODS, pods), status_patch(&object), Expect::event("team")];
    let (result, seen) = run_scripted(handle, script, dream_schedule::reconcile(Arc::new(object), ctx.clone())).await;
    result.unwrap();
    assert_eq!(seen[2].body["reason"], "DreamFailed");
    assert!(ctx.metrics.encode().contains(FAILED_COUNTED));

    // Once status records it, a later reconcile neither reads the pod again nor tells it again.
    let recorded = seen[1].body["status"].clone();
    let object = schedule(json!({}), recorded, json!({}));
    let (_, failed, _) = failed_pass();
    let (ctx, handle) = test_context_with(holding(true, vec![failed]));
    let script = vec![];
    let (result, seen) = run_scripted(handle, script, dream_schedule::reconcile(Arc::new(object), ctx.clone())).await;
    result.unwrap();
    assert_eq!(seen.len(), 0, "no pod read, no write, no event");
    assert!(!ctx.metrics.encode().contains(FAILED_COUNTED));
}

/// A new schedule (no status yet) with exactly `spec`.
fn new_schedule(spec: Value) -> DreamSchedule {
    serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
        "metadata": {"name": "nightly", "namespace": "team", "generation": 1, "uid": "u-2"},
        "spec": spec
    }))
    .unwrap()
}

#[tokio::test]
async fn valid_schedule_checks_its_agents_and_is_ready() {
    let (ctx, handle) = test_context_with(holding(true, vec![]));
    let nightly =
        new_schedule(json!({"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "agents": {"names": ["support"]}}));
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
    let broken = new_schedule(json!({"schedule": "61 * * * *", "agents": {"names": ["support"]}}));
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
    let (ctx, handle) = test_context_with(holding(true, vec![]));
    let with_model = new_schedule(json!({
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

mod plans {
    //! The plan step as a table: inputs in, Jobs, status and effects out, no API.

    use kube::runtime::events::EventType;

    use super::*;
    use crate::controller::dream_schedule::dereference::{Observed, Selection};
    use crate::controller::dream_schedule::plan::{About, Effect, Inputs, Plan, plan};
    use crate::controller::dream_schedule::validate::validate;

    fn agent() -> Agent {
        sessions_agent("/s")
    }

    fn planned(object: &DreamSchedule, jobs: Vec<Value>, messages: &[(&str, &str)]) -> Plan {
        let observed = Observed {
            selection: Selection {
                agents: vec![agent()],
                ..Selection::default()
            },
            jobs: jobs.into_iter().map(|j| serde_json::from_value(j).unwrap()).collect(),
            messages: messages
                .iter()
                .map(|(job, message)| (job.to_string(), Some(message.to_string())))
                .collect(),
        };
        let valid = validate(&object.spec);
        plan(&Inputs {
            schedule: object,
            valid: valid.as_ref().map_err(Vec::as_slice),
            observed: &observed,
            image: "reverie:test",
            now: now(),
        })
        .unwrap()
    }

    fn reasons(plan: &Plan) -> Vec<&'static str> {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_situation_plans_its_jobs_status_and_effects() {
        let running = job("nightly-support-old", "2026-11-20T11:55:00Z", None);
        let due = schedule(json!({}), handled_1155(), json!({}));
        let forbid = planned(&due, vec![running.clone()], &[]);
        let replace = planned(
            &schedule(json!({"concurrencyPolicy": "Replace"}), handled_1155(), json!({})),
            vec![running],
            &[],
        );
        let start = planned(&due, vec![], &[]);
        let (handled, failed, _) = failed_pass();
        let report = r#"{"result":"Failed","message":"boom","suspectedInjections":[{"class":"addsRecipients","sessions":4,"excerpt":"bcc"}]}"#;
        let failure = planned(&handled, vec![failed.clone()], &[("nightly-support-1", report)]);
        let mut recorded = handled.clone();
        recorded.status = Some(failure.status.clone());
        let steady = planned(&recorded, vec![failed], &[]);

        // (case, plan, Jobs created, Jobs deleted, event reasons in order)
        type Row<'a> = (&'a str, &'a Plan, usize, Vec<&'a str>, Vec<&'a str>);
        let table: [Row<'_>; 5] = [
            ("start", &start, 1, vec![], vec!["DreamStarted"]),
            ("forbid", &forbid, 0, vec![], vec!["DreamSkipped"]),
            (
                "replace",
                &replace,
                1,
                vec!["nightly-support-old"],
                vec!["DreamReplaced", "DreamStarted"],
            ),
            (
                "failure",
                &failure,
                0,
                vec![],
                vec!["SuspectedInjection", "DreamFailed"],
            ),
            ("steady", &steady, 0, vec![], vec![]),
        ];
        for (case, plan, creates, deletes, events) in table {
            assert_eq!(plan.create.len(), creates, "{case}: creates");
            assert_eq!(plan.delete, deletes, "{case}: deletes");
            assert_eq!(reasons(plan), events, "{case}: events");
        }
        assert!(start.grant_dreamer && !failure.grant_dreamer);
        assert_eq!(start.requeue_at, Some("2026-11-20T12:05:00Z".parse().unwrap()));
        assert!(start.effects.contains(&Effect::DreamStarted("schedule")));
        assert!(failure.effects.contains(&Effect::DreamFinished("Failed")));
        assert!(failure.effects.iter().any(|e| matches!(e,
            Effect::Event { about: About::Agent(a), type_: EventType::Warning, .. } if a == "support")));
        assert_eq!(
            steady.status, failure.status,
            "a recorded failure plans the same status: no write"
        );
        assert!(steady.effects.is_empty());
    }

    #[test]
    fn measured_lesson_effects_set_the_gauges_and_a_regressed_lesson_warns_on_the_agent() {
        let (handled, _, _) = failed_pass();
        let done = job(
            "nightly-support-1",
            "2026-11-20T11:55:00Z",
            Some(("Complete", "2026-11-20T11:57:00Z")),
        );
        let report = r#"{"result":"Proposed","proposal":"nightly-support-1","message":"proposed 1 changes",
            "effects":{"effective":2,"noEffect":1,"regressed":1,"tooEarly":0,
            "regressedLessons":[{"id":"lesson-9","summary":"cut its mistake from 40% to 5% of sessions; mean outcome -0.45: regressed"}]}}"#;
        let plan = planned(&handled, vec![done.clone()], &[("nightly-support-1", report)]);
        let counts = crate::api::dream_job::LessonCounts {
            effective: 2,
            no_effect: 1,
            regressed: 1,
            too_early: 0,
        };
        assert!(plan.effects.contains(&Effect::LessonEffects {
            agent: "support".into(),
            counts: counts.clone(),
        }));
        let recorded = plan.status.last_runs.iter().find(|r| r.agent == "support").unwrap();
        assert_eq!(recorded.lessons, Some(counts), "the run keeps the counts");
        let warning = plan
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Event {
                    about: About::Agent(agent),
                    type_: EventType::Warning,
                    reason: "LessonRegressed",
                    note,
                    ..
                } if agent == "support" => Some(note.clone()),
                _ => None,
            })
            .expect("a Warning event on the agent");
        assert!(
            warning.contains("lesson-9") && warning.contains("proposed in nightly-support-1"),
            "{warning}"
        );
        // A report without effects (nothing measured) sets no gauge.
        let quiet = r#"{"result":"NothingToPropose","message":"nothing"}"#;
        let plan = planned(&handled, vec![done], &[("nightly-support-1", quiet)]);
        assert!(!plan.effects.iter().any(|e| matches!(e, Effect::LessonEffects { .. })));
    }

    #[test]
    fn an_invalid_spec_plans_no_job_and_reports_why() {
        let broken = schedule(json!({"schedule": "61 * * * *"}), handled_1155(), json!({}));
        let plan = planned(&broken, vec![], &[]);
        assert!(plan.create.is_empty() && !plan.grant_dreamer && plan.requeue_at.is_none());
        let accepted = plan.status.conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
        assert_eq!(accepted.reason, "InvalidSchedule");
    }
}
