//! `kubectl dream` on a real API server with the operator running: a reviewer reads a
//! proposal's diff, approves or rejects it (bound to the digest the operator recorded, signed
//! with the kubeconfig user), cannot decide twice, edits a proposal into a superseding one,
//! triggers a dream now, reads the revision history and rolls back through the same approval
//! path; and, with the approval admission policy installed, approvals are bound to who the API
//! server says the caller is (impersonated users).

use std::process::Output;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use reverie::api::memory_proposal::{ChangeOp, Decision, Phase, ProposedChange};
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::{self, AgentBuilder, DreamScheduleBuilder, MemoryProposalBuilder};
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, install_crds, kubectl_dream_bin, memory_md, wait_digest, wait_for,
    wait_phase, wait_revision,
};
use serde_json::{Value, json};

/// The plugin under test: `$KUBECTL_DREAM_BIN`, else next to the `reverie` binary.
/// Runs `kubectl-dream <args> -n <namespace>` with the test's kubeconfig (and `env`).
async fn kubectl_dream(namespace: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = kubectl_dream_bin();
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p reverie --bins",
        bin.display()
    );
    let mut command = tokio::process::Command::new(&bin);
    command.args(args).args(["-n", namespace]).env_remove("NO_COLOR");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.expect("kubectl-dream runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Asserts exit code 1 with one `error:` line (after the "approving as" line, if the write was
/// tried), and returns it.
fn fails(output: &Output) -> String {
    let full = stderr(output);
    let err = full
        .strip_prefix(
            full.lines()
                .next()
                .filter(|l| l.contains("ing as "))
                .unwrap_or_default(),
        )
        .unwrap_or(&full)
        .trim_start()
        .to_string();
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(output)
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err.trim_end().to_string()
}

/// The user the API server authenticates the test's kubeconfig as: the reviewer the plugin
/// records.
async fn authenticated_user() -> String {
    reverie::kube_ext::whoami(&client().await)
        .await
        .expect("the API server says who we are")
}

/// A proposal of `lesson` on the agent's current memory revision.
fn proposal(name: &str, agent: &Agent, lesson: &str) -> MemoryProposal {
    let memory = agent.status.as_ref().and_then(|s| s.memory.clone()).unwrap();
    MemoryProposalBuilder::new(name)
        .agent(&agent.name_any())
        .base(memory.revision, &memory.digest)
        .summary("Reviewed 12 sessions.")
        .change(ProposedChange {
            rationale: Some("seen in most sessions".into()),
            ..test_support::lesson(lesson, 4, &["s-1", "s-2", "s-3", "s-4"])
        })
        .build()
}

#[tokio::test]
async fn a_reviewer_diffs_approves_rejects_and_edits_and_decisions_are_final() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "kdream").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "kdream").await.unwrap();
    let n = ns.name.as_str();
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    apply(&agents, &AgentBuilder::new("support").build()).await.unwrap();
    let support = wait_revision(&agents, "support", 1).await.unwrap();
    for (name, lesson) in [
        ("support-a", "Look accounts up by billing id, not email."),
        ("support-b", "Always escalate refunds."),
        ("support-c", "Retry the invoice API after a 429."),
    ] {
        proposals
            .create(&PostParams::default(), &proposal(name, &support, lesson))
            .await
            .unwrap();
    }

    // The review diff, uncoloured because stdout is a pipe, ends with the approve command.
    let digest = wait_digest(&proposals, "support-a").await.unwrap();
    let diff = ok(&kubectl_dream(n, &["diff", "support-a"], &[]).await);
    assert!(!diff.contains('\x1b'), "{diff}");
    assert!(diff.contains("Agent:    support\n"), "{diff}");
    assert!(diff.contains(&format!("Digest:   {digest}\n")), "{diff}");
    assert!(
        diff.contains(
            "+ [lessons] Look accounts up by billing id, not email.\n    evidence: 4 sessions (e.g. s-1, s-2, s-3)\n"
        ),
        "{diff}"
    );
    let approve_line = format!("kubectl dream approve support-a -n {n} --digest {digest}");
    assert!(diff.trim_end().ends_with(&approve_line), "{diff}");

    // Approve exactly what was shown, as the user the API server knows, said before writing.
    let approved = kubectl_dream(
        n,
        &[
            "approve",
            "support-a",
            "--comment",
            "matches the sessions",
            "--digest",
            &digest,
        ],
        &[],
    )
    .await;
    let out = ok(&approved);
    let reviewer = authenticated_user().await;
    assert_eq!(stderr(&approved), format!("approving as {reviewer}\n"));
    assert_eq!(
        out,
        format!("memoryproposal/support-a approved by {reviewer} (digest {digest})\n")
    );
    let approved = proposals.get("support-a").await.unwrap();
    let approval = approved.spec.approval.clone().unwrap();
    assert_eq!(approval.decision, Decision::Approved);
    assert_eq!(
        approval.digest.as_deref(),
        approved.status.as_ref().unwrap().digest.as_deref()
    );
    assert_eq!(approval.reviewer.as_deref(), Some(reviewer.as_str()));
    assert!(!reviewer.is_empty());
    assert_eq!(approval.comment.as_deref(), Some("matches the sessions"));

    // Reject another.
    let rejected_digest = wait_digest(&proposals, "support-b").await.unwrap();
    ok(&kubectl_dream(n, &["reject", "support-b", "--comment", "too broad"], &[]).await);
    let rejected = proposals.get("support-b").await.unwrap();
    let approval = rejected.spec.approval.unwrap();
    assert_eq!(approval.decision, Decision::Rejected);
    assert_eq!(approval.digest.as_deref(), Some(rejected_digest.as_str()));
    assert_eq!(approval.comment.as_deref(), Some("too broad"));

    // A decision is final: deciding again fails with a clear message and writes nothing.
    let err = fails(&kubectl_dream(n, &["approve", "support-a"], &[]).await);
    assert_eq!(
        err,
        format!("error: memoryproposal support-a is already Approved by {reviewer}; a decision is final")
    );
    let err = fails(&kubectl_dream(n, &["approve", "support-b"], &[]).await);
    assert!(err.contains("is already Rejected"), "{err}");
    assert_eq!(
        proposals
            .get("support-b")
            .await
            .unwrap()
            .spec
            .approval
            .unwrap()
            .decision,
        Decision::Rejected
    );
    // A digest other than the proposal's is refused.
    wait_digest(&proposals, "support-c").await.unwrap();
    let err = fails(&kubectl_dream(n, &["approve", "support-c", "--digest", &digest], &[]).await);
    assert!(err.contains("not the sha256:"), "{err}");
    let err = fails(&kubectl_dream(n, &["approve", "missing"], &[]).await);
    assert_eq!(err, format!("error: memoryproposal missing not found in namespace {n}"));

    // The approval goes through: applied as revision 2.
    wait_phase(&proposals, "support-a", Phase::Applied).await.unwrap();
    wait_phase(&proposals, "support-b", Phase::Rejected).await.unwrap();

    // Edit: a new proposal with the edited text that supersedes the old one.
    let out = ok(&kubectl_dream(
        n,
        &["edit", "support-c"],
        &[("EDITOR", "sed -i 's/after a 429/after a 429, with backoff/'")],
    )
    .await);
    let edited_name = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("memoryproposal/"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert!(edited_name.starts_with("support-c-edit-"), "{out}");
    let edited = proposals.get(&edited_name).await.unwrap();
    assert_eq!(
        edited.spec.changes[0].after.as_deref(),
        Some("Retry the invoice API after a 429, with backoff.")
    );
    assert_eq!(
        edited.spec.source.as_ref().unwrap().supersedes.as_deref(),
        Some("support-c")
    );
    assert_eq!(edited.owner_references()[0].name, "support");
    wait_phase(&proposals, "support-c", Phase::Superseded).await.unwrap();

    // The list shows them all.
    let list = ok(&kubectl_dream(n, &["list"], &[]).await);
    for name in ["support-a", "support-b", "support-c", edited_name.as_str()] {
        assert!(list.contains(name), "{name}: {list}");
    }
    let listed: Vec<MemoryProposal> =
        serde_json::from_str(&ok(&kubectl_dream(n, &["list", "-o", "json"], &[]).await)).unwrap();
    assert_eq!(listed.len(), 4);

    drop(operator);
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn run_annotates_every_schedule_that_selects_the_agent() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "kdream-run").await.unwrap();
    let n = ns.name.as_str();
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    apply(
        &agents,
        &AgentBuilder::new("support")
            .instructions("Help.")
            .labels([("team", "billing")])
            .build(),
    )
    .await
    .unwrap();
    for schedule in [
        DreamScheduleBuilder::new("by-name"),
        DreamScheduleBuilder::new("by-label").selector([("team", "billing")]),
        DreamScheduleBuilder::new("other").agents(&["sales"]),
    ] {
        apply(&schedules, &schedule.build()).await.unwrap();
    }
    let out = ok(&kubectl_dream(n, &["run", "support"], &[]).await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("dreamschedule/by-label triggered: reverie.dev/dream-now="));
    assert!(lines[1].starts_with("dreamschedule/by-name triggered: reverie.dev/dream-now="));
    let value = lines[0].rsplit('=').next().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(value).is_ok(), "{value}");
    for name in ["by-name", "by-label"] {
        let schedule = schedules.get(name).await.unwrap();
        assert_eq!(
            schedule.annotations().get("reverie.dev/dream-now").map(String::as_str),
            Some(value)
        );
    }
    assert!(
        !schedules
            .get("other")
            .await
            .unwrap()
            .annotations()
            .contains_key("reverie.dev/dream-now")
    );

    let err = fails(&kubectl_dream(n, &["run", "ghost"], &[]).await);
    assert_eq!(err, format!("error: agent ghost not found in namespace {n}"));
    apply(&agents, &AgentBuilder::new("lonely").instructions("Help.").build())
        .await
        .unwrap();
    let err = fails(&kubectl_dream(n, &["run", "lonely"], &[]).await);
    assert_eq!(
        err,
        format!("error: no DreamSchedule selects agent lonely in namespace {n}")
    );
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn history_and_a_rollback_that_goes_through_approval() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "kdream-rollback").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "kdream-rollback").await.unwrap();
    let n = ns.name.as_str();
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    let configmaps = ns.api::<ConfigMap>();

    // Revision 1: the agent; revision 2: new instructions; revision 3: an approved lesson.
    apply(&agents, &AgentBuilder::new("notes").instructions("Take notes.").build())
        .await
        .unwrap();
    wait_revision(&agents, "notes", 1).await.unwrap();
    apply(
        &agents,
        &AgentBuilder::new("notes").instructions("Take short notes.").build(),
    )
    .await
    .unwrap();
    let notes = wait_revision(&agents, "notes", 2).await.unwrap();
    proposals
        .create(
            &PostParams::default(),
            &proposal("notes-bullets", &notes, "Use bullet points."),
        )
        .await
        .unwrap();
    wait_digest(&proposals, "notes-bullets").await.unwrap();
    ok(&kubectl_dream(n, &["approve", "notes-bullets"], &[]).await);
    wait_phase(&proposals, "notes-bullets", Phase::Applied).await.unwrap();
    let notes = wait_revision(&agents, "notes", 3).await.unwrap();
    assert!(memory_md(&configmaps.get("notes-memory").await.unwrap()).contains("Use bullet points."));

    // History: the current revision marked, the proposal and reviewer of revision 3. The Agent's
    // status learns the reviewer from the proposal's Applied status, which may land after the
    // revision itself: wait for it rather than race it.
    wait_for(
        &agents,
        "notes",
        "revision 3 with its reviewer in the status history",
        |a: Option<&Agent>| {
            a.and_then(|a| a.status.as_ref())
                .is_some_and(|s| s.history.iter().any(|r| r.revision == 3 && r.approved_by.is_some()))
        },
    )
    .await
    .unwrap();
    let reviewer = authenticated_user().await;
    let history = ok(&kubectl_dream(n, &["history", "notes"], &[]).await);
    let rows: Vec<Vec<&str>> = history
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{history}");
    assert_eq!(
        &rows[0][..4],
        ["*", "3", "notes-bullets", reviewer.as_str()],
        "{history}"
    );
    assert_eq!(rows[1][0], "2", "{history}");
    assert_eq!(rows[2][0], "1", "{history}");
    let json: Value =
        serde_json::from_str(&ok(&kubectl_dream(n, &["history", "notes", "-o", "json"], &[]).await)).unwrap();
    assert_eq!(json["currentRevision"], 3);
    assert_eq!(
        json["revisions"][0]["digest"].as_str(),
        Some(notes.status.unwrap().memory.unwrap().digest.as_str())
    );
    assert!(json["revisions"].as_array().unwrap().iter().all(|r| r["kept"] == true));

    // Refusals: the current revision, and one that is not kept.
    let err = fails(&kubectl_dream(n, &["rollback", "notes", "--to-revision", "3"], &[]).await);
    assert_eq!(
        err,
        "error: revision 3 is the current revision of agent notes; nothing to roll back"
    );
    let err = fails(&kubectl_dream(n, &["rollback", "notes", "--to-revision", "42"], &[]).await);
    assert!(
        err.contains("revision 42 of agent notes is not kept (kept revisions: 1, 2, 3;"),
        "{err}"
    );

    // Roll back to revision 2: a proposal that archives the lesson, reviewed like any other.
    let out = ok(&kubectl_dream(n, &["rollback", "notes", "--to-revision", "2"], &[]).await);
    let name = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("memoryproposal/"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert!(name.starts_with("notes-rollback-r2-"), "{out}");
    assert!(out.contains(&format!("kubectl dream diff {name} -n {n}")), "{out}");
    let rollback = proposals.get(&name).await.unwrap();
    assert_eq!(rollback.spec.source.as_ref().unwrap().restores_revision, Some(2));
    assert_eq!(rollback.spec.base_revision, 3);
    assert_eq!(rollback.owner_references()[0].name, "notes");
    assert_eq!(rollback.owner_references()[0].controller, Some(true));
    let ops: Vec<ChangeOp> = rollback.spec.changes.iter().map(|c| c.op).collect();
    assert_eq!(ops, [ChangeOp::Archive]);
    assert_eq!(rollback.spec.changes[0].before.as_deref(), Some("Use bullet points."));

    let digest = wait_digest(&proposals, &name).await.unwrap();
    let diff = ok(&kubectl_dream(n, &["diff", &name], &[]).await);
    assert!(diff.contains("Source:   restores revision 2\n"), "{diff}");
    assert!(diff.contains(": Use bullet points.\n"), "{diff}");
    assert!(diff.contains("\n- [lessons] "), "{diff}");
    ok(&kubectl_dream(n, &["approve", &name, "--digest", &digest], &[]).await);
    wait_phase(&proposals, &name, Phase::Applied).await.unwrap();
    wait_revision(&agents, "notes", 4).await.unwrap();
    let memory = configmaps.get("notes-memory").await.unwrap();
    assert!(
        !memory_md(&memory).contains("Use bullet points."),
        "{}",
        memory_md(&memory)
    );
    assert!(memory_md(&memory).contains("Take short notes."));

    // Revision 4 holds what revision 2 did: nothing left to restore.
    let err = fails(&kubectl_dream(n, &["rollback", "notes", "--to-revision", "2"], &[]).await);
    assert!(
        err.contains("holds the same entries as the current revision 4"),
        "{err}"
    );

    drop(operator);
    ns.delete().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The approval policy (config/rbac/approval-policy.yaml) on the API server, with impersonation.

/// A client that impersonates `user` in `groups`, as `kubectl --as --as-group` does.
async fn client_as(user: &str, groups: &[&str]) -> kube::Client {
    let mut config = kube::Config::infer().await.expect("KUBECONFIG");
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect());
    kube::Client::try_from(config).unwrap()
}

/// The YAML documents of `config/rbac/<file>`.
fn rbac_documents(file: &str) -> Vec<Value> {
    let path = reverie_e2e::repo_root().join("config/rbac").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The shipped policy, the reviewer ClusterRole and the bindings of this test, installed under
/// names of this namespace and bound to it alone, so no other test (and no leftover) sees them.
struct PolicyFixture {
    client: kube::Client,
    suffix: String,
}

impl PolicyFixture {
    async fn install(client: &kube::Client, namespace: &str) -> PolicyFixture {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
        let fixture = PolicyFixture {
            client: client.clone(),
            suffix: namespace.to_string(),
        };
        let docs = rbac_documents("approval-policy.yaml");
        let mut policy: ValidatingAdmissionPolicy = serde_json::from_value(docs[0].clone()).unwrap();
        policy.metadata.name = Some(fixture.policy_name());
        let mut binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(docs[1].clone()).unwrap();
        binding.metadata.name = Some(fixture.policy_name());
        let mut binding_json = serde_json::to_value(&binding).unwrap();
        binding_json["spec"]["policyName"] = json!(fixture.policy_name());
        binding_json["spec"]["matchResources"] =
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}});
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(binding_json).unwrap();
        apply(&Api::all(client.clone()), &policy).await.unwrap();
        apply(&Api::all(client.clone()), &binding).await.unwrap();

        let mut reviewer: ClusterRole =
            serde_json::from_value(rbac_documents("reviewer-clusterrole.yaml")[0].clone()).unwrap();
        reviewer.metadata.name = Some(fixture.reviewer_role());
        apply(&Api::all(client.clone()), &reviewer).await.unwrap();
        // Writers may create and patch proposals (RBAC) but hold no `approve`.
        let writer: Role = serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "proposal-writer"},
            "rules": [{"apiGroups": ["reverie.dev"], "resources": ["memoryproposals", "agents"],
                       "verbs": ["get", "list", "watch", "create", "patch", "update"]}]
        }))
        .unwrap();
        apply(&Api::namespaced(client.clone(), namespace), &writer)
            .await
            .unwrap();
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
        apply(
            &bindings,
            &reverie_e2e::role_binding("rita-reviews", "ClusterRole", &fixture.reviewer_role(), "User", "rita"),
        )
        .await
        .unwrap();
        apply(
            &bindings,
            &reverie_e2e::role_binding("group-writes", "Role", "proposal-writer", "Group", "reverie-reviewers"),
        )
        .await
        .unwrap();
        apply(
            &bindings,
            &reverie_e2e::role_binding("wes-writes", "Role", "proposal-writer", "User", "wes"),
        )
        .await
        .unwrap();
        fixture.wait_enforced(namespace).await;
        fixture
    }

    fn policy_name(&self) -> String {
        format!("reverie-approval-{}", self.suffix)
    }

    fn reviewer_role(&self) -> String {
        format!("reverie-reviewer-{}", self.suffix)
    }

    /// Policies take effect asynchronously: waits until a create without the creator annotation
    /// is refused (a server-side dry run, so nothing is written).
    async fn wait_enforced(&self, namespace: &str) {
        let api: Api<MemoryProposal> = Api::namespaced(self.client.clone(), namespace);
        let probe = MemoryProposalBuilder::new("probe")
            .agent("none")
            .base(1, "sha256:0")
            .summary("probe")
            .change(test_support::lesson("probe", 1, &["s"]))
            .build();
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        reverie_e2e::within(std::time::Duration::from_secs(60), async {
            loop {
                if api.create(&dry_run, &probe).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("the approval policy takes effect within a minute");
    }

    async fn remove(self) {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        use k8s_openapi::api::rbac::v1::ClusterRole;
        let dp = kube::api::DeleteParams::default();
        Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
            .delete(&self.policy_name(), &dp)
            .await
            .unwrap();
        Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
            .delete(&self.policy_name(), &dp)
            .await
            .unwrap();
        Api::<ClusterRole>::all(self.client.clone())
            .delete(&self.reviewer_role(), &dp)
            .await
            .unwrap();
    }
}

/// `proposal` with its creator on record, as the dream pods and `kubectl dream` write it.
fn created_by(mut proposal: MemoryProposal, user: &str) -> MemoryProposal {
    proposal.record_creator(user);
    proposal
}

fn refused_with(result: Result<MemoryProposal, kube::Error>, says: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains(says),
                "{:?} does not say {says:?}",
                status.message
            );
        }
        other => panic!("expected a denial saying {says:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn approvals_are_bound_to_the_user_the_api_server_authenticates() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "approvals").await.unwrap();
    let n = ns.name.as_str();
    let operator = OperatorProcess::start(n, "approvals").await.unwrap();
    let agents = ns.api::<Agent>();
    apply(&agents, &AgentBuilder::new("support").build()).await.unwrap();
    let support = wait_revision(&agents, "support", 1).await.unwrap();
    let fixture = PolicyFixture::install(&client, n).await;
    let admin = authenticated_user().await;
    let proposals = ns.api::<MemoryProposal>();

    // A creator is on record, as the requesting user: missing or forged, the create is refused.
    let missing = proposals
        .create(
            &PostParams::default(),
            &proposal("support-x", &support, "Greet warmly."),
        )
        .await;
    refused_with(
        missing,
        &format!("set metadata.annotations[\"reverie.dev/created-by\"] to \"{admin}\""),
    );
    let forged = created_by(proposal("support-x", &support, "Greet warmly."), "rita");
    refused_with(
        proposals.create(&PostParams::default(), &forged).await,
        "records who created it",
    );
    for (name, lesson) in [
        ("support-a", "Look accounts up by billing id, not email."),
        ("support-b", "Always escalate refunds."),
        ("support-c", "Retry the invoice API after a 429."),
    ] {
        let proposal = created_by(proposal(name, &support, lesson), &admin);
        proposals.create(&PostParams::default(), &proposal).await.unwrap();
    }
    let rewrite = json!({"metadata": {"annotations": {"reverie.dev/created-by": "somebody-else"}}});
    refused_with(
        proposals
            .patch(
                "support-a",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&rewrite),
            )
            .await,
        "cannot change",
    );

    // A holder of the reviewer role approves as herself: applied, with her name on it.
    let digest = wait_digest(&proposals, "support-a").await.unwrap();
    let approved = kubectl_dream(n, &["approve", "support-a", "--as", "rita", "--digest", &digest], &[]).await;
    assert_eq!(
        ok(&approved),
        format!("memoryproposal/support-a approved by rita (digest {digest})\n")
    );
    assert_eq!(stderr(&approved), "approving as rita\n");
    let applied = wait_phase(&proposals, "support-a", Phase::Applied).await.unwrap();
    assert_eq!(applied.spec.approval.unwrap().reviewer.as_deref(), Some("rita"));

    // A user who may write proposals but is no reviewer is denied by the policy.
    wait_digest(&proposals, "support-b").await.unwrap();
    let err = fails(&kubectl_dream(n, &["approve", "support-b", "--as", "wes"], &[]).await);
    assert!(err.contains("wes may not approve or reject MemoryProposals"), "{err}");
    // A member of the reviewer group may (the group, not the role, makes him an approver).
    let rejected_by_gus = kubectl_dream(
        n,
        &[
            "reject",
            "support-b",
            "--as",
            "gus",
            "--as-group",
            "reverie-reviewers",
            "-m",
            "too broad",
        ],
        &[],
    )
    .await;
    ok(&rejected_by_gus);
    assert_eq!(stderr(&rejected_by_gus), "rejecting as gus\n");

    // A reviewer writing someone else's name is denied, whatever her client says.
    wait_digest(&proposals, "support-c").await.unwrap();
    let as_rita = Api::<MemoryProposal>::namespaced(client_as("rita", &[]).await, n);
    let in_gus_name = json!({"spec": {"approval": {"decision": "Approved", "reviewer": "gus"}}});
    refused_with(
        as_rita
            .patch(
                "support-c",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&in_gus_name),
            )
            .await,
        "spec.approval.reviewer must be the user making the request: rita",
    );

    // The creator of a proposal may not decide it (four eyes), even holding the role.
    let hers = created_by(proposal("support-d", &support, "Confirm the plan first."), "rita");
    as_rita.create(&PostParams::default(), &hers).await.unwrap();
    wait_digest(&proposals, "support-d").await.unwrap();
    let err = fails(&kubectl_dream(n, &["approve", "support-d", "--as", "rita"], &[]).await);
    assert!(
        err.contains("rita created this proposal and may not decide it"),
        "{err}"
    );
    assert!(proposals.get("support-d").await.unwrap().spec.approval.is_none());

    fixture.remove().await;
    drop(operator);
    ns.delete().await.unwrap();
}
