//! `kubectl dream` without a cluster: what the reviewer reads (the review diff with and without
//! colour, the proposal list, the revision history) and how the plugin handles its arguments
//! (exit codes, one error line on stderr).

use std::process::{Command, Output};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use reverie::api::review::render_diff;
use reverie::api::{Agent, MemoryProposal};
use reverie::cli::kubectl_dream::Output as Format;
use reverie::cli::kubectl_dream::history::{build_history, render_history};
use reverie::cli::kubectl_dream::render_list;
use serde_json::{Value, json};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn proposal(status: Value) -> MemoryProposal {
    let mut proposal: MemoryProposal = serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": "support-dream-7", "namespace": "team", "creationTimestamp": "2026-11-20T10:00:00Z"},
        "spec": {
            "agentRef": {"name": "support"}, "baseRevision": 3, "baseDigest": DIGEST,
            "summary": "Customers are looked up by billing id; retries need a backoff.",
            "stats": {"sessionsReviewed": 42, "tokensIn": 1200, "tokensOut": 300, "reflector": "builtin"},
            "source": {"dreamSchedule": "nightly", "job": "nightly-support-29"},
            "changes": [
                {"op": "Add", "id": "lesson-9", "section": "lessons", "after": "Look accounts up by billing id.",
                 "evidence": {"count": 7, "sessions": ["s-1", "s-2", "s-3", "s-4"]},
                 "rationale": "recurs across sessions and is not in memory yet"},
                {"op": "Archive", "id": "fact-2", "section": "facts", "before": "The portal is at /old.",
                 "rationale": "stale: not reinforced for 30 days"},
                {"op": "Update", "id": "lesson-1", "section": "lessons", "before": "Retry on 429.",
                 "after": "Retry on 429 with a backoff.", "evidence": {"count": 1, "sessions": ["s-9"]}},
                {"op": "Merge", "id": "pref-1", "ids": ["pref-2"], "section": "preferences",
                 "after": "Answer in the customer's language.", "evidence": {"count": 5}},
                {"op": "Move", "id": "pref-3", "section": "workflows", "after": "Escalate refunds over 100 EUR."},
                {"op": "Reinforce", "id": "lesson-2", "section": "lessons", "after": "Check the plan first.",
                 "evidence": {"count": 12, "sessions": ["s-5"]}}
            ]
        }
    }))
    .unwrap();
    let mut status = status;
    if status.get("digest").is_some_and(|d| d == "auto") {
        status["digest"] = json!(proposal.spec.content_digest());
    }
    proposal.status = serde_json::from_value(status).unwrap();
    proposal
}

fn pending() -> MemoryProposal {
    proposal(json!({"phase": "Pending", "digest": "auto"}))
}

#[test]
fn the_review_diff_reads_like_git_diff_without_colour() {
    let p = pending();
    let digest = p.spec.content_digest();
    let text = render_diff(&p, false);
    assert!(!text.contains('\x1b'), "{text}");
    let expected_head = format!(
        "memoryproposal team/support-dream-7\n\
         Agent:    support\n\
         Phase:    Pending\n\
         Base:     revision 3 ({DIGEST})\n\
         Digest:   {digest}\n\
         Source:   dream schedule nightly, job nightly-support-29\n\
         Stats:    42 sessions reviewed, 1200 tokens in, 300 out, builtin reflector\n\
         \n    Customers are looked up by billing id; retries need a backoff.\n\n"
    );
    assert!(text.starts_with(&expected_head), "{text}");
    let body = &text[expected_head.len()..];
    let expected_body = "\
+ [lessons] Look accounts up by billing id.
    evidence: 7 sessions (e.g. s-1, s-2, s-3)
    rationale: recurs across sessions and is not in memory yet
- [facts] fact-2: The portal is at /old.
    rationale: stale: not reinforced for 30 days
~ [lessons] update lesson-1
    - Retry on 429.
    + Retry on 429 with a backoff.
    evidence: 1 session (e.g. s-9)
~ [preferences] merge pref-2 into pref-1
    + Answer in the customer's language.
    evidence: 5 sessions
~ move pref-3 to [workflows]
    Escalate refunds over 100 EUR.
~ [lessons] reinforce lesson-2: Check the plan first.
    evidence: 12 sessions (e.g. s-5)

1 addition, 1 archival, 4 other changes; strongest evidence: 12 sessions

";
    assert!(body.starts_with(expected_body), "{body}");
    let last = text.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "Digest {digest}. To approve exactly this: kubectl dream approve support-dream-7 -n team --digest {digest}"
        )
    );
}

#[test]
fn colour_marks_additions_green_archivals_red_and_the_rest_yellow() {
    let text = render_diff(&pending(), true);
    assert!(
        text.contains("\x1b[32m+ [lessons] Look accounts up by billing id.\x1b[0m"),
        "{text}"
    );
    assert!(
        text.contains("\x1b[31m- [facts] fact-2: The portal is at /old.\x1b[0m"),
        "{text}"
    );
    assert!(text.contains("\x1b[33m~ [lessons] update lesson-1\x1b[0m"), "{text}");
    assert!(text.contains("\x1b[31m    - Retry on 429.\x1b[0m"), "{text}");
    assert!(
        text.contains("\x1b[32m    + Retry on 429 with a backoff.\x1b[0m"),
        "{text}"
    );
    assert!(
        text.starts_with("\x1b[1mmemoryproposal team/support-dream-7\x1b[0m\n"),
        "{text}"
    );
    // Without the escapes, the coloured diff is the plain one.
    let stripped = strip_ansi(&text);
    assert_eq!(stripped, render_diff(&pending(), false));
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_last_line_says_why_there_is_nothing_to_approve() {
    let unseen = proposal(json!({}));
    let text = render_diff(&unseen, false);
    assert!(
        text.contains("Digest:   - (not yet recorded by the operator)"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("No digest yet: the operator has not seen this proposal")
    );

    let mut decided = pending();
    decided.spec.approval = serde_json::from_value(
        json!({"decision": "Approved", "reviewer": "ana", "comment": "good catch", "digest": decided.spec.content_digest()}),
    )
    .unwrap();
    let text = render_diff(&decided, false);
    assert!(text.contains("Decision: Approved by ana: \"good catch\""), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with("Approved by ana; the decision is final."),
        "{text}"
    );

    let mut tampered = pending();
    tampered.spec.summary = "edited after the fact".into();
    let text = render_diff(&tampered, false);
    assert!(text.lines().last().unwrap().starts_with("Tampered:"), "{text}");

    let applied = proposal(json!({"phase": "Applied", "digest": "auto", "approvedBy": "reverie/auto-approve"}));
    let text = render_diff(&applied, false);
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with("the proposal is Applied (approved by reverie/auto-approve); nothing to decide."),
        "{text}"
    );
}

#[test]
fn a_rollback_and_an_edit_say_where_they_come_from() {
    let mut p = pending();
    p.spec.source = serde_json::from_value(json!({"restoresRevision": 2})).unwrap();
    assert!(render_diff(&p, false).contains("Source:   restores revision 2\n"));
    p.spec.source =
        serde_json::from_value(json!({"supersedes": "support-dream-6", "dreamSchedule": "nightly"})).unwrap();
    assert!(render_diff(&p, false).contains("Source:   dream schedule nightly, supersedes support-dream-6\n"));
}

#[test]
fn the_list_counts_changes_and_shows_the_strongest_evidence() {
    let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
    let table = render_list(&[pending()], Format::Table, true, now).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["NAMESPACE", "NAME", "AGENT", "PHASE", "CHANGES", "EVIDENCE", "AGE"]
    );
    assert_eq!(
        rows[1],
        [
            "team",
            "support-dream-7",
            "support",
            "Pending",
            "+1",
            "-1",
            "~4",
            "12",
            "2d"
        ]
    );
    let yaml = render_list(&[pending()], Format::Yaml, false, now).unwrap();
    let parsed: Vec<MemoryProposal> = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(parsed, vec![pending()]);
}

fn snapshot(revision: u64, update: &str, created: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("support-memory-r{revision}"),
            "creationTimestamp": created,
            "labels": {"reverie.dev/agent": "support", "reverie.dev/revision": revision.to_string()},
            "annotations": {
                "reverie.dev/revision": revision.to_string(),
                "reverie.dev/digest": format!("sha256:{revision}{}", "0".repeat(63)),
                "reverie.dev/update": update
            }
        }
    }))
    .unwrap()
}

#[test]
fn history_joins_applied_revisions_and_kept_snapshots_and_marks_the_current_one() {
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "support", "namespace": "team"},
        "spec": {"model": "m", "instructions": "Help."},
        "status": {
            "memory": {"revision": 3, "digest": format!("sha256:3{}", "0".repeat(63)), "tokens": 10, "bytes": 100, "entries": 3},
            "history": [
                {"revision": 3, "proposal": "support-dream-7", "approvedBy": "ana", "time": "2026-11-22T09:00:00Z",
                 "digest": format!("sha256:3{}", "0".repeat(63))},
                {"revision": 1, "proposal": "support-dream-1", "approvedBy": "bo", "time": "2026-11-01T09:00:00Z",
                 "digest": format!("sha256:1{}", "0".repeat(63))}
            ]
        }
    }))
    .unwrap();
    let snapshots = [
        snapshot(2, "agent-spec/abcd", "2026-11-10T09:00:00Z"),
        snapshot(3, "proposal/support-dream-7/sha256:x", "2026-11-22T09:00:00Z"),
    ];
    let history = build_history(&agent, &snapshots, Some(3));
    let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
    let table = render_history(&history, now);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        [
            "CURRENT",
            "REVISION",
            "PROPOSAL",
            "APPROVED BY",
            "AGE",
            "KEPT",
            "DIGEST"
        ]
    );
    let cells = |line: &str| line.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        cells(lines[1]),
        ["*", "3", "support-dream-7", "ana", "60m", "yes", "sha256:300000000000"]
    );
    assert_eq!(
        cells(lines[2]),
        ["2", "(agent", "spec)", "-", "12d", "yes", "sha256:200000000000"]
    );
    assert_eq!(
        cells(lines[3]),
        ["1", "support-dream-1", "bo", "21d", "no", "sha256:100000000000"]
    );
    let json: Value = serde_json::to_value(&history).unwrap();
    assert_eq!(json["currentRevision"], 3);
    assert_eq!(json["revisions"][0]["current"], true);
    assert_eq!(json["revisions"][2]["kept"], false);
    assert_eq!(json["revisions"][1]["update"], "agent-spec/abcd");
}

// ---- the binary: arguments, exit codes, errors ----

fn kubectl_dream(args: &[&str], kubeconfig: Option<&std::path::Path>) -> Output {
    let home = std::env::temp_dir().join(format!("kubectl-dream-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-dream"));
    command
        .args(args)
        .env("HOME", &home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBECONFIG");
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    command.output().expect("kubectl-dream runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["approve"][..],
        &["rollback", "support"],
        &["rollback", "support", "--to-revision", "two"],
        &["diff", "p", "--color", "sometimes"],
        &["list", "-o", "wide"],
        &["dashboard", "--port", "http"],
        &["dashboard", "--address", "localhost"],
        &["frobnicate"],
    ] {
        let output = kubectl_dream(args, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_lists_every_command_and_exits_0() {
    let output = kubectl_dream(&["--help"], None);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "list",
        "diff",
        "approve",
        "reject",
        "run",
        "history",
        "rollback",
        "edit",
        "dashboard",
    ] {
        assert!(help.contains(&format!("\n  {command} ")), "{command}: {help}");
    }
    for flag in ["--namespace", "--context", "--kubeconfig", "--output"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[test]
fn the_dashboard_refuses_a_remote_address_before_touching_the_cluster() {
    // No kubeconfig at all: the flag is refused first, with the way to allow it.
    let output = kubectl_dream(&["dashboard", "--address", "0.0.0.0"], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );
    assert!(output.stdout.is_empty());
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kubectl-dream-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_missing_kubeconfig_is_one_error_line_and_exit_1() {
    let dir = temp_dir("missing");
    let missing = dir.join("nope");
    let output = kubectl_dream(&["list", "--kubeconfig", missing.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot read kubeconfig {}", missing.display())),
        "{err}"
    );
    assert!(output.stdout.is_empty());

    // Nothing at all: no kubeconfig, not in a cluster.
    let output = kubectl_dream(&["list"], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: no Kubernetes configuration found"), "{err}");
}

fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    path
}

#[test]
fn an_unreachable_server_is_one_error_line_and_exit_1() {
    let dir = temp_dir("unreachable");
    let kubeconfig = unreachable_kubeconfig(&dir);
    for args in [
        &["list"][..],
        &["diff", "p"],
        &["approve", "p", "--comment", "ok"],
        &["reject", "p"],
        &["run", "support"],
        &["history", "support"],
        &["rollback", "support", "--to-revision", "1"],
        &["edit", "p"],
        &["dashboard", "--port", "0"],
    ] {
        let output = kubectl_dream(args, Some(&kubeconfig));
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: cannot "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn an_unknown_context_is_an_error() {
    let dir = temp_dir("context");
    let kubeconfig = unreachable_kubeconfig(&dir);
    let output = kubectl_dream(&["list", "--context", "nope"], Some(&kubeconfig));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.starts_with("error: invalid kubeconfig"), "{err}");
    assert!(err.contains("nope"), "{err}");
}
