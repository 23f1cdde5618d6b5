//! `kubectl dream dashboard` in a real browser (headless Chromium over WebDriver) against the
//! local control plane: a dream's proposal is in the queue, its page shows the evidence, a user
//! without the reviewer role is denied by the API server, a reviewer's Approve leads to
//! `Applied` and a new revision in the timeline, and a change made elsewhere shows up on an
//! open page without a reload. Screenshots of each page go to the test output.

use fantoccini::Locator;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::Api;
use kube::api::ListParams;
use reverie::api::memory_proposal::Phase;
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::DreamScheduleBuilder;
use reverie_e2e::browser::{Browser, Dashboard};
use reverie_e2e::{
    OperatorProcess, TIMEOUT, TestNamespace, apply, client, copy_example_sessions, dreaming_agent, first_pass,
    install_crds, repo_root, role_binding, wait_digest, wait_phase, wait_revision, within,
};
use serde_json::json;

/// The shipped reviewer ClusterRole under this namespace's name, bound to `reviewer`; and a
/// read-only Role (what the pages read, and no write) bound to `reader`.
async fn roles(client: &kube::Client, namespace: &str, reviewer: &str, reader: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("config/rbac/reviewer-clusterrole.yaml")).unwrap();
    let mut role: ClusterRole = serde_yaml::from_str(&text).unwrap();
    let role_name = format!("reverie-reviewer-{namespace}");
    role.metadata.name = Some(role_name.clone());
    apply(&Api::all(client.clone()), &role).await.unwrap();
    let read_only: Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reads-reverie"},
        "rules": [
            {"apiGroups": ["reverie.dev"], "resources": ["agents", "dreamschedules", "memoryproposals"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["configmaps", "events"], "verbs": ["get", "list", "watch"]}
        ]
    }))
    .unwrap();
    apply(&Api::namespaced(client.clone(), namespace), &read_only)
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    apply(
        &bindings,
        &role_binding("reviewer", "ClusterRole", &role_name, "User", reviewer),
    )
    .await
    .unwrap();
    apply(
        &bindings,
        &role_binding("reader", "Role", "reads-reverie", "User", reader),
    )
    .await
    .unwrap();
    role_name
}

/// Runs `kubectl dream <args> -n <namespace>`; asserts it succeeded.
async fn kubectl_dream(namespace: &str, args: &[&str]) -> String {
    let bin = reverie_e2e::kubectl_dream_bin();
    let output = tokio::process::Command::new(&bin)
        .args(args)
        .args(["-n", namespace])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kubectl dream {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Opens the proposal on `dashboard`, types `comment`, presses Approve; returns the answer the
/// page shows.
async fn approve_on_the_page(
    browser: &Browser,
    dashboard: &Dashboard,
    namespace: &str,
    name: &str,
    comment: &str,
) -> String {
    let page = &browser.client;
    page.goto(&format!("{}/ns/{namespace}/proposals/{name}", dashboard.url))
        .await
        .unwrap();
    page.find(Locator::Css("#comment"))
        .await
        .unwrap()
        .send_keys(comment)
        .await
        .unwrap();
    browser.click(Locator::Css("button.approve")).await.unwrap();
    browser.text("#outcome").await.unwrap()
}

#[tokio::test]
async fn a_reviewer_works_through_the_queue_in_a_browser() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "dashboard").await.unwrap();
    let n = ns.name.as_str();
    let _operator = OperatorProcess::start(n, "dashboard").await.unwrap();
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let proposals = ns.api::<MemoryProposal>();
    let sessions = copy_example_sessions(&std::env::temp_dir().join(format!("reverie-e2e-{n}-sessions")));
    apply(&agents, &dreaming_agent("support", &sessions)).await.unwrap();
    wait_revision(&agents, "support", 1).await.unwrap();
    apply(
        &schedules,
        &DreamScheduleBuilder::new("nightly").agents(&["support"]).build(),
    )
    .await
    .unwrap();
    let run = first_pass(&schedules, "nightly", "support").await.unwrap();
    let name = run.proposal.expect("the dream proposes");
    let digest = wait_digest(&proposals, &name).await.unwrap();
    let proposal = proposals.get(&name).await.unwrap();
    let example = proposal
        .spec
        .changes
        .iter()
        .find_map(|c| c.evidence.as_ref()?.sessions.first().cloned())
        .expect("a change names an example session");
    let role = roles(&client, n, "rita", "wes").await;
    // The example transcripts hold injection attempts: the pass refused them and said so.
    let events: Api<Event> = Api::namespaced(client.clone(), n);
    let injections = ListParams::default().fields("reason=SuspectedInjection");
    within(TIMEOUT, async {
        while events.list(&injections).await.unwrap().items.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the SuspectedInjection event");

    let rita = Dashboard::start(&["-n", n, "--as", "rita"]).await.unwrap();
    let wes = Dashboard::start(&["-n", n, "--as", "wes"]).await.unwrap();
    let browser = Browser::start().await.unwrap();
    let page = &browser.client;

    // Agents: the agent with its approval mode, memory and the pending proposal.
    page.goto(&rita.url).await.unwrap();
    let row = browser.text(r#"tr[data-agent="support"]"#).await.unwrap();
    assert!(row.contains("Review"), "{row}");
    assert!(row.contains("revision 1"), "{row}");
    assert_eq!(
        browser.text(r#"tr[data-agent="support"] td.pending"#).await.unwrap(),
        "1"
    );
    assert_eq!(browser.text("#user").await.unwrap(), "rita");
    browser
        .wait_text("#live-status", |status| status == "live")
        .await
        .unwrap();
    let reported = r#"tr[data-agent="support"] td.injections"#;
    assert!(browser.text(reported).await.unwrap().contains("report"));
    browser
        .click(Locator::Css(&format!("{reported} summary")))
        .await
        .unwrap();
    let report = browser.text(&format!("{reported} details p")).await.unwrap();
    assert!(report.contains("suspected injection"), "{report}");
    browser.screenshot("dashboard-agents").await.unwrap();

    // The queue lists the dream's proposal with its counts.
    browser.click(Locator::LinkText("Review queue")).await.unwrap();
    let counts = browser.text("p.counts").await.unwrap();
    assert!(counts.starts_with("1 proposal waits for a decision"), "{counts}");
    browser.text(&format!(r#"tr[data-proposal="{name}"]"#)).await.unwrap();
    browser.screenshot("dashboard-queue").await.unwrap();

    // Its page shows every change with its evidence and example sessions.
    browser.click(Locator::LinkText(&name)).await.unwrap();
    let changes = page.find_all(Locator::Css("article.change")).await.unwrap();
    assert_eq!(changes.len(), proposal.spec.changes.len());
    let evidence = browser.text("dl.evidence").await.unwrap();
    assert!(evidence.contains("sessions"), "{evidence}");
    browser
        .text(&format!(r#"a.session[href="/queue?session={example}"]"#))
        .await
        .unwrap();
    assert!(browser.text("#decision form").await.unwrap().contains(&digest));
    browser.screenshot("dashboard-proposal").await.unwrap();

    // A user without the reviewer role presses Approve: the API server's denial is shown,
    // and nothing is written.
    let denial = approve_on_the_page(&browser, &wes, n, &name, "looks fine").await;
    assert!(denial.contains("The API server refused (HTTP 403)"), "{denial}");
    assert!(denial.contains("\"wes\" cannot patch"), "{denial}");
    assert!(proposals.get(&name).await.unwrap().spec.approval.is_none());
    browser.screenshot("dashboard-denied").await.unwrap();

    // The reviewer approves on the page: accepted as her, and the page follows the operator
    // to Applied by itself.
    let accepted = approve_on_the_page(&browser, &rita, n, &name, "reviewed in the browser").await;
    assert!(
        accepted.contains("The API server accepted: approved by rita"),
        "{accepted}"
    );
    browser.wait_text("#phase", |phase| phase == "Applied").await.unwrap();
    let applied = wait_phase(&proposals, &name, Phase::Applied).await.unwrap();
    let approval = applied.spec.approval.unwrap();
    assert_eq!(approval.reviewer.as_deref(), Some("rita"));
    assert_eq!(approval.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(approval.comment.as_deref(), Some("reviewed in the browser"));

    // The agent's page: revision 2 in the timeline, approved by her, and its memory.
    browser.click(Locator::Css("#proposal-header dd a")).await.unwrap();
    let revision = browser.text(r#"tr[data-revision="2"]"#).await.unwrap();
    assert!(revision.contains("rita") && revision.contains(&name), "{revision}");
    assert!(
        browser
            .text("article.memory")
            .await
            .unwrap()
            .contains("Memory of support")
    );
    assert!(browser.text("svg.chart").await.is_ok());
    browser.screenshot("dashboard-agent").await.unwrap();

    // Elsewhere (a terminal), a rollback is proposed and approved: the open page shows the
    // new revision without a reload.
    let before = browser.refreshes().await.unwrap();
    kubectl_dream(n, &["rollback", "support", "--to-revision", "1"]).await;
    let rollback = proposals
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.spec.source.as_ref().and_then(|s| s.restores_revision) == Some(1))
        .map(|p| kube::ResourceExt::name_any(&p))
        .expect("the rollback proposal");
    wait_digest(&proposals, &rollback).await.unwrap();
    kubectl_dream(n, &["approve", &rollback, "--as", "rita"]).await;
    browser
        .wait_text("#revision", |revision| revision == "3")
        .await
        .unwrap();
    let row = browser.text(r#"tr[data-revision="3"]"#).await.unwrap();
    assert!(row.contains(&rollback), "{row}");
    assert!(
        browser.refreshes().await.unwrap() > before,
        "swapped in by the live update"
    );

    browser.close().await.unwrap();
    let rbac: Api<ClusterRole> = Api::all(client.clone());
    rbac.delete(&role, &Default::default()).await.unwrap();
    ns.delete().await.unwrap();
}
