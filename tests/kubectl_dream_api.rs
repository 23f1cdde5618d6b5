//! `kubectl dream` against the crate's loopback API server (`reverie::test_support`): the exact requests
//! each command sends — the approval merge patch bound to the resource version read, the
//! dream-now annotation, the rollback and edit proposals — and the refusals that send none.

use std::path::PathBuf;
use std::process::{Command, Output};

use axum::http::{Method, StatusCode};
use reverie::api::MemoryProposal;
use reverie::api::memory_proposal::ProposedChange;
use reverie::memory::MemoryDocument;
use reverie::memory::change::{Change, apply};
use reverie::store::Snapshot;
use reverie::test_support::{LoopbackServer, Seen, failure, not_found};
use reverie_api::test_support::{AgentBuilder, DreamScheduleBuilder, MemoryProposalBuilder, lesson, paths};
use serde_json::{Value, json};

/// Where the plugin asks who it is (SelfSubjectReview).
const SELF_SUBJECT_REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

/// The user the scripted server authenticates the kubeconfig's token as. It differs from the
/// kubeconfig's name for its user entry (`ana`), as it does with OIDC or cloud logins.
const AUTHENTICATED: &str = "ana@example.com";

/// The shared loopback API server, with what the plugin needs of it here: a kubeconfig, and
/// the answer to who the caller is.
struct ApiServer(LoopbackServer);

impl ApiServer {
    /// A server that says the caller is [`AUTHENTICATED`] and answers the rest with `answer`.
    fn start(answer: impl Fn(&Seen) -> (StatusCode, Value) + Send + Sync + 'static) -> Self {
        Self::start_raw(move |request| {
            if request.method == Method::POST && request.path == SELF_SUBJECT_REVIEWS {
                return (
                    StatusCode::CREATED,
                    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                           "status": {"userInfo": {"username": AUTHENTICATED, "groups": ["reviewers", "system:authenticated"]}}}),
                );
            }
            answer(request)
        })
    }

    fn start_raw(answer: impl Fn(&Seen) -> (StatusCode, Value) + Send + Sync + 'static) -> Self {
        Self(LoopbackServer::start(answer))
    }

    fn requests(&self) -> Vec<Seen> {
        self.0.requests()
    }

    /// Requests other than GETs and the question who the caller is (what the command wrote).
    fn writes(&self) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != Method::GET && r.path != SELF_SUBJECT_REVIEWS)
            .collect()
    }

    /// A kubeconfig for this server: user `ana`, namespace `team`.
    fn kubeconfig(&self) -> PathBuf {
        let url = self.0.url();
        let port = url.rsplit(':').next().expect("the URL has a port");
        let dir = std::env::temp_dir().join(format!("kubectl-dream-api-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{url}\"}}\n\
                 contexts:\n- name: review\n  context: {{cluster: c, user: ana, namespace: team}}\n\
                 current-context: review\nusers:\n- name: ana\n  user: {{token: t}}\n"
            ),
        )
        .unwrap();
        path
    }
}

fn conflict(message: &str) -> (StatusCode, Value) {
    (StatusCode::CONFLICT, failure(StatusCode::CONFLICT, "Conflict", message))
}

fn proposals() -> String {
    paths::proposals("team")
}

fn agents() -> String {
    paths::agents("team")
}

fn schedules() -> String {
    paths::schedules("team")
}

fn configmaps() -> String {
    paths::configmaps("team")
}

/// Proposal `name` of agent `support` as the operator has seen it (`Pending`, digest
/// recorded, and `extra_status`), read at resource version 42.
fn proposal(name: &str, extra_status: Value) -> Value {
    let proposal = MemoryProposalBuilder::new(name)
        .namespace("team")
        .uid("p-1")
        .resource_version("42")
        .base(1, "sha256:b")
        .dreamed_by("nightly", "nightly-support-1")
        .change(ProposedChange {
            id: Some("lesson-x".into()),
            ..lesson("Use the billing id.", 4, &["s-1"])
        })
        .seen_by_operator()
        .build();
    let mut proposal = to_json(&proposal);
    if let (Some(status), Some(extra)) = (proposal["status"].as_object_mut(), extra_status.as_object()) {
        status.extend(extra.clone());
    }
    proposal
}

fn agent() -> AgentBuilder {
    AgentBuilder::new("support")
        .namespace("team")
        .uid("agent-uid")
        .instructions("Help.")
}

fn schedule(name: &str) -> DreamScheduleBuilder {
    DreamScheduleBuilder::new(name).namespace("team")
}

fn to_json(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).unwrap()
}

fn kubectl_dream(server: &ApiServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-dream"));
    command
        .args(args)
        .env("KUBECONFIG", server.kubeconfig())
        .env("USER", "root")
        .env_remove("NO_COLOR")
        .env_remove("VISUAL")
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("kubectl-dream runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A server holding proposal `p` (as `object`) that accepts patches to it.
fn proposal_server(object: Value, patch_answer: Option<(StatusCode, Value)>) -> ApiServer {
    ApiServer::start(move |request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", path) if path == format!("{}/p", proposals()) => (StatusCode::OK, object.clone()),
        ("PATCH", path) if path == format!("{}/p", proposals()) => patch_answer.clone().unwrap_or_else(|| {
            let mut written = object.clone();
            written["spec"]["approval"] = request.body["spec"]["approval"].clone();
            (StatusCode::OK, written)
        }),
        _ => not_found(),
    })
}

#[test]
fn approve_writes_the_decision_the_digest_and_the_authenticated_user_bound_to_the_version_read() {
    let object = proposal("p", json!({}));
    let digest = object["status"]["digest"].as_str().unwrap().to_string();
    let server = proposal_server(object, None);
    let output = kubectl_dream(&server, &["approve", "p", "--comment", "matches what I see"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("memoryproposal/p approved by {AUTHENTICATED} (digest {digest})\n")
    );
    assert_eq!(stderr(&output), format!("approving as {AUTHENTICATED}\n"));
    let writes = server.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(writes[0].header("content-type"), "application/merge-patch+json");
    assert_eq!(
        writes[0].body,
        json!({"metadata": {"resourceVersion": "42"},
               "spec": {"approval": {"decision": "Approved", "digest": digest, "reviewer": AUTHENTICATED, "comment": "matches what I see"}}})
    );
}

#[test]
fn a_server_that_cannot_say_who_you_are_gets_no_decision() {
    let object = proposal("p", json!({}));
    let server = ApiServer::start_raw(move |request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", path) if path == format!("{}/p", proposals()) => (StatusCode::OK, object.clone()),
        _ => not_found(),
    });
    let output = kubectl_dream(&server, &["approve", "p"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("error: cannot tell who you are, so nothing was written: the API server did not say who you are (SelfSubjectReview, Kubernetes 1.28+)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(server.writes().is_empty());
}

#[test]
fn as_and_as_group_impersonate_like_kubectl() {
    let object = proposal("p", json!({}));
    let server = proposal_server(object, None);
    let output = kubectl_dream(
        &server,
        &[
            "approve",
            "p",
            "--as",
            "rita",
            "--as-group",
            "leads",
            "--as-group",
            "sre",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let requests = server.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.header("impersonate-user"), "rita", "{request:?}");
        assert_eq!(
            request.header_values("impersonate-group"),
            ["leads", "sre"],
            "{request:?}"
        );
    }
}

#[test]
fn reject_with_the_reviewed_digest_and_json_output() {
    let object = proposal("p", json!({}));
    let digest = object["status"]["digest"].as_str().unwrap().to_string();
    let server = proposal_server(object, None);
    let output = kubectl_dream(&server, &["reject", "p", "--digest", &digest, "-o", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let written: MemoryProposal = serde_json::from_str(&stdout(&output)).unwrap();
    let approval = written.spec.approval.unwrap();
    assert_eq!(format!("{:?}", approval.decision), "Rejected");
    assert_eq!(approval.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(approval.comment, None);
}

#[test]
fn a_proposal_changed_since_it_was_read_is_a_conflict() {
    let server = proposal_server(proposal("p", json!({})), Some(conflict("the object has been modified")));
    let output = kubectl_dream(&server, &["approve", "p"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "approving as {AUTHENTICATED}\nerror: the proposal changed since you read it; run `kubectl dream diff p -n team` again\n"
        )
    );
}

#[test]
fn refusals_send_no_write() {
    let decided = {
        let mut p = proposal("p", json!({}));
        p["spec"]["approval"] = json!({"decision": "Approved", "reviewer": "bo"});
        p
    };
    let unseen = {
        let mut p = proposal("p", json!({}));
        p["status"] = json!({});
        p
    };
    let tampered = {
        let mut p = proposal("p", json!({}));
        p["spec"]["summary"] = json!("edited");
        p
    };
    let cases = [
        (
            decided,
            vec!["approve", "p"],
            "error: memoryproposal p is already Approved by bo; a decision is final",
        ),
        (
            unseen,
            vec!["approve", "p"],
            "error: memoryproposal p is not yet seen by the operator",
        ),
        (tampered, vec!["reject", "p"], "error: memoryproposal p is tampered"),
        (
            proposal("p", json!({"phase": "Expired"})),
            vec!["approve", "p"],
            "error: memoryproposal p is Expired; there is nothing left to decide",
        ),
        (
            proposal("p", json!({})),
            vec!["approve", "p", "--digest", "sha256:abc"],
            "error: memoryproposal p has digest sha256:",
        ),
    ];
    for (object, args, expected) in cases {
        let server = proposal_server(object, None);
        let output = kubectl_dream(&server, &args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert!(err.starts_with(expected), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(server.writes().is_empty(), "{args:?}");
    }
    let server = proposal_server(proposal("p", json!({})), None);
    let output = kubectl_dream(&server, &["approve", "other"], &[]);
    assert_eq!(
        stderr(&output),
        "error: memoryproposal other not found in namespace team\n"
    );
}

#[test]
fn diff_is_plain_when_piped_coloured_on_request_and_an_object_with_o_json() {
    let server = proposal_server(proposal("p", json!({})), None);
    let plain = stdout(&kubectl_dream(&server, &["diff", "p"], &[]));
    assert!(
        plain.contains("\n+ [lessons] Use the billing id.\n    evidence: 4 sessions (e.g. s-1)\n"),
        "{plain}"
    );
    assert!(!plain.contains('\x1b'));
    assert!(plain.trim_end().ends_with(&format!(
        "kubectl dream approve p -n team --digest {}",
        proposal("p", json!({}))["status"]["digest"].as_str().unwrap()
    )));
    let coloured = stdout(&kubectl_dream(
        &server,
        &["diff", "p", "--color", "always"],
        &[("NO_COLOR", "1")],
    ));
    assert!(
        coloured.contains("\x1b[32m+ [lessons] Use the billing id.\x1b[0m"),
        "{coloured}"
    );
    let json = stdout(&kubectl_dream(&server, &["diff", "p", "-o", "json"], &[]));
    let object: MemoryProposal = serde_json::from_str(&json).unwrap();
    assert_eq!(object.metadata.name.as_deref(), Some("p"));
    let yaml = stdout(&kubectl_dream(&server, &["diff", "p", "-o", "yaml"], &[]));
    assert!(serde_yaml::from_str::<MemoryProposal>(&yaml).is_ok(), "{yaml}");
}

#[test]
fn run_annotates_each_schedule_that_selects_the_agent() {
    let listed = vec![
        to_json(&schedule("by-name").build()),
        to_json(&schedule("by-label").selector([("team", "billing")]).build()),
        to_json(&schedule("other").agents(&["sales"]).build()),
    ];
    let list =
        json!({"apiVersion": "reverie.dev/v1alpha1", "kind": "DreamScheduleList", "metadata": {}, "items": listed});
    let server = ApiServer::start(move |request| {
        let path = request.path.as_str();
        match request.method.as_str() {
            "GET" if path == format!("{}/support", agents()) => {
                (StatusCode::OK, to_json(&agent().labels([("team", "billing")]).build()))
            }
            "GET" if path == schedules() => (StatusCode::OK, list.clone()),
            "PATCH" if path.starts_with(&schedules()) => {
                let name = path.rsplit('/').next().unwrap();
                let mut written = to_json(&schedule(name).build());
                written["metadata"]["annotations"] = request.body["metadata"]["annotations"].clone();
                (StatusCode::OK, written)
            }
            _ => not_found(),
        }
    });
    let output = kubectl_dream(&server, &["run", "support"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let writes = server.writes();
    let patched: Vec<&str> = writes.iter().map(|r| r.path.rsplit('/').next().unwrap()).collect();
    assert_eq!(patched, ["by-label", "by-name"]);
    let value = writes[0].body["metadata"]["annotations"]["reverie.dev/dream-now"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(value.parse::<jiff::Timestamp>().is_ok(), "{value}");
    assert_eq!(writes[1].body, writes[0].body);
    assert_eq!(writes[0].header("content-type"), "application/merge-patch+json");
    let out = stdout(&output);
    assert!(
        out.contains(&format!(
            "dreamschedule/by-label triggered: reverie.dev/dream-now={value}\n"
        )),
        "{out}"
    );

    let output = kubectl_dream(&server, &["run", "nobody"], &[]);
    assert_eq!(stderr(&output), "error: agent nobody not found in namespace team\n");
}

#[test]
fn run_without_a_schedule_for_the_agent_is_an_error() {
    let list = json!({"apiVersion": "reverie.dev/v1alpha1", "kind": "DreamScheduleList", "metadata": {},
                      "items": [to_json(&schedule("other").agents(&["sales"]).build())]});
    let server = ApiServer::start(move |request| match request.path.as_str() {
        p if p == format!("{}/support", agents()) => (StatusCode::OK, to_json(&agent().build())),
        p if p == schedules() => (StatusCode::OK, list.clone()),
        _ => not_found(),
    });
    let output = kubectl_dream(&server, &["run", "support"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no DreamSchedule selects agent support in namespace team\n"
    );
    assert!(server.writes().is_empty());
}

/// The ConfigMap the store keeps for a snapshot.
fn memory_configmap(name: &str, snapshot: &Snapshot) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "team", "annotations": snapshot.info.annotations(),
                     "labels": {"reverie.dev/agent": "support", "reverie.dev/revision": snapshot.info.revision.to_string()}},
        "data": {"memory.yaml": snapshot.yaml, "MEMORY.md": snapshot.markdown}
    })
}

fn revisions() -> (Snapshot, Snapshot) {
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let r1 = MemoryDocument::with_instructions("Help.", &[], at("2026-01-01T00:00:00Z"));
    let lesson: reverie::memory::Entry = serde_yaml::from_str(
        "id: lesson-x\ntext: Use the billing id.\nkind: lesson\nevidence: {count: 4, sessions: [s-1]}\ncreated: 2026-01-02T00:00:00Z\n",
    )
    .unwrap();
    let r2 = apply(
        &r1,
        &[Change::Add {
            section: "lessons".into(),
            entry: lesson,
        }],
    )
    .unwrap();
    (
        Snapshot::build("support", 1, "agent-spec/a", r1),
        Snapshot::build("support", 2, "proposal/p/sha256:x", r2),
    )
}

#[test]
fn rollback_creates_a_proposal_that_restores_the_revision() {
    let (r1, r2) = revisions();
    let current = memory_configmap("support-memory", &r2);
    let kept = memory_configmap("support-memory-r1", &r1);
    let server = ApiServer::start(move |request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", p) if p == format!("{}/support", agents()) => (StatusCode::OK, to_json(&agent().build())),
        ("GET", p) if p == format!("{}/support-memory", configmaps()) => (StatusCode::OK, current.clone()),
        ("GET", p) if p == format!("{}/support-memory-r1", configmaps()) => (StatusCode::OK, kept.clone()),
        ("GET", p) if p == configmaps() => (
            StatusCode::OK,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
                   "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "support-memory-r1", "labels": {"reverie.dev/revision": "1"}}},
                             {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "support-memory-r2", "labels": {"reverie.dev/revision": "2"}}}]}),
        ),
        ("POST", p) if p == proposals() => (StatusCode::CREATED, request.body.clone()),
        _ => not_found(),
    });
    let output = kubectl_dream(&server, &["rollback", "support", "--to-revision", "1"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let writes = server.writes();
    assert_eq!(writes.len(), 1);
    let created: MemoryProposal = serde_json::from_value(writes[0].body.clone()).unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("support-rollback-r1-"), "{name}");
    assert_eq!(
        stdout(&output),
        format!(
            "memoryproposal/{name} created: restores revision 1 of agent support (1 change)\nReview it with: kubectl dream diff {name} -n team\n"
        )
    );
    assert_eq!(created.spec.base_revision, 2);
    assert_eq!(created.spec.base_digest, r2.info.digest);
    assert_eq!(created.spec.source.unwrap().restores_revision, Some(1));
    let owner = &created.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.uid.as_str(), owner.controller), ("agent-uid", Some(true)));
    let change = &created.spec.changes[0];
    assert_eq!(
        (format!("{:?}", change.op), change.id.as_deref()),
        ("Archive".to_string(), Some("lesson-x"))
    );

    let output = kubectl_dream(&server, &["rollback", "support", "--to-revision", "2"], &[]);
    assert_eq!(
        stderr(&output),
        "error: revision 2 is the current revision of agent support; nothing to roll back\n"
    );
    let output = kubectl_dream(&server, &["rollback", "support", "--to-revision", "7"], &[]);
    assert_eq!(
        stderr(&output),
        "error: revision 7 of agent support is not kept (kept revisions: 1, 2; spec.memory.revisionHistoryLimit sets how many)\n"
    );
    assert_eq!(server.writes().len(), 1);
}

/// A server for `edit`: proposal `p` and its agent; creating proposals echoes them.
fn edit_server() -> ApiServer {
    let object = proposal("p", json!({}));
    ApiServer::start(move |request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", p) if p == format!("{}/p", proposals()) => (StatusCode::OK, object.clone()),
        ("GET", p) if p == format!("{}/support", agents()) => (StatusCode::OK, to_json(&agent().build())),
        ("POST", p) if p == proposals() => (StatusCode::CREATED, request.body.clone()),
        _ => not_found(),
    })
}

#[test]
fn edit_creates_a_superseding_proposal_from_the_edited_changes() {
    let server = edit_server();
    let output = kubectl_dream(
        &server,
        &["edit", "p"],
        &[("EDITOR", "sed -i 's/the billing id/the billing account id/'")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let writes = server.writes();
    assert_eq!(writes.len(), 1);
    let created: MemoryProposal = serde_json::from_value(writes[0].body.clone()).unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("p-edit-"), "{name}");
    assert_eq!(
        created.spec.changes[0].after.as_deref(),
        Some("Use the billing account id.")
    );
    let source = created.spec.source.unwrap();
    assert_eq!(source.supersedes.as_deref(), Some("p"));
    assert_eq!(source.dream_schedule.as_deref(), Some("nightly"));
    assert_eq!(created.spec.summary, "learned");
    assert_eq!(created.spec.approval, None);
    assert_eq!(created.metadata.owner_references.unwrap()[0].uid, "agent-uid");
    assert_eq!(
        stdout(&output),
        format!("memoryproposal/{name} created: supersedes p\nReview it with: kubectl dream diff {name} -n team\n")
    );
}

#[test]
fn an_untouched_edit_creates_nothing_and_a_broken_one_names_the_line() {
    let server = edit_server();
    let output = kubectl_dream(&server, &["edit", "p"], &[("EDITOR", "true"), ("VISUAL", "")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "memoryproposal/p: no changes edited; nothing created\n"
    );

    // $VISUAL wins over $EDITOR.
    let output = kubectl_dream(
        &server,
        &["edit", "p"],
        &[("VISUAL", "sed -i 's/op: Add/op: Ad/'"), ("EDITOR", "true")],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(": line 4, column"), "{err}");
    assert!(err.contains("unknown variant `Ad`"), "{err}");
    assert!(err.contains("nothing was created"), "{err}");
    let kept = err.split(": line").next().unwrap().trim_start_matches("error: ");
    assert!(std::fs::read_to_string(kept).unwrap().contains("op: Ad"));
    let _ = std::fs::remove_file(kept);

    // Well-formed but unusable: the operator's own checks refuse it before anything is created.
    let output = kubectl_dream(
        &server,
        &["edit", "p"],
        &[("EDITOR", "sed -i 's/section: lessons/section: core/'")],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("the edited changes would be refused"), "{err}");
    assert!(err.contains("protected"), "{err}");

    // A failing editor creates nothing.
    let output = kubectl_dream(&server, &["edit", "p"], &[("EDITOR", "false")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("exited with"), "{}", stderr(&output));
    assert!(server.writes().is_empty());
}

#[test]
fn history_reads_the_agent_and_its_kept_revisions() {
    let (r1, r2) = revisions();
    let snapshots = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {},
        "items": [memory_configmap("support-memory-r1", &r1), memory_configmap("support-memory-r2", &r2)]});
    let mut with_status = to_json(&agent().build());
    with_status["status"] =
        json!({"memory": {"revision": 2, "digest": r2.info.digest, "tokens": 1, "bytes": 1, "entries": 2}});
    let server = ApiServer::start(move |request| match request.path.as_str() {
        p if p == format!("{}/support", agents()) => (StatusCode::OK, with_status.clone()),
        p if p == configmaps() => (StatusCode::OK, snapshots.clone()),
        _ => not_found(),
    });
    let output = kubectl_dream(&server, &["history", "support", "-o", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let history: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(history["currentRevision"], 2);
    assert_eq!(history["revisions"][0]["revision"], 2);
    assert_eq!(history["revisions"][0]["proposal"], "p");
    assert_eq!(history["revisions"][0]["current"], true);
    assert_eq!(history["revisions"][1]["digest"], r1.info.digest);
    let table = stdout(&kubectl_dream(&server, &["history", "support"], &[]));
    assert!(table.lines().nth(1).unwrap().starts_with("*         2 "), "{table}");
    let list_request = server.requests().into_iter().find(|r| r.path == configmaps()).unwrap();
    assert_eq!(list_request.method, "GET");
    assert!(
        list_request
            .query
            .contains("labelSelector=reverie.dev%2Fagent%3Dsupport%2Creverie.dev%2Frevision"),
        "{}",
        list_request.query
    );
}
