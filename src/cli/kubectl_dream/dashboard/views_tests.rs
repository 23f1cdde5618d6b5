//! The pages, rendered from fixtures: what a reviewer must see, and that hostile text from the
//! cluster stays text.

use std::collections::BTreeMap;

use jiff::{Timestamp, ToSpan};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use reverie_api::test_support::{AgentBuilder, DreamScheduleBuilder, MemoryProposalBuilder, lesson, update};

use super::*;
use crate::api::agent::{AgentStatus, MemoryStatus};
use crate::api::dream_schedule::{AgentRun, DreamScheduleStatus};
use crate::api::effect::{EvidencePattern, PatternKind};
use crate::api::memory_proposal::{Approval, Decision, Phase};
use crate::api::{Agent, DreamSchedule};
use crate::cli::kubectl_dream::dashboard::read::{Injections, agent_rows, queue};
use crate::cli::kubectl_dream::history::Revision;

const HOSTILE: &str = "<script>alert(1)</script>";

fn now() -> Timestamp {
    "2026-12-06T12:00:00Z".parse().unwrap()
}

fn created(mut proposal: MemoryProposal, hours_ago: i64) -> MemoryProposal {
    proposal.metadata.creation_timestamp = Some(Time(now() - hours_ago.hours()));
    proposal
}

fn pending(name: &str, agent: &str, hours_ago: i64) -> MemoryProposal {
    let proposal = MemoryProposalBuilder::new(name)
        .namespace("team")
        .resource_version("7")
        .agent(agent)
        .base(2, "sha256:base")
        .summary("Two lessons from 40 sessions.\nSecond line.")
        .change(lesson("Look accounts up by billing id.", 6, &["s-1", "s-2"]))
        .change(update("lesson-a", "Retry the invoice API once after a 429.", 4))
        .seen_by_operator()
        .build();
    created(proposal, hours_ago)
}

fn agent(name: &str) -> Agent {
    let mut agent = AgentBuilder::new(name).namespace("team").build();
    agent.spec.memory.max_tokens = 2000;
    agent.status = Some(AgentStatus {
        memory: Some(MemoryStatus {
            revision: 3,
            digest: "sha256:abc".into(),
            tokens: 500,
            bytes: 2000,
            entries: 4,
            updated: None,
        }),
        ..AgentStatus::default()
    });
    agent
}

/// A schedule that ran `support` twice (the newer run 2h ago) and `billing` never.
fn schedule() -> DreamSchedule {
    let run = |hours: i64, proposal: &str| AgentRun {
        agent: "support".into(),
        job: format!("nightly-{hours}"),
        result: "Succeeded".into(),
        proposal: Some(proposal.into()),
        tokens: None,
        sessions_reviewed: Some(40),
        message: None,
        lessons: None,
        time: Time(now() - hours.hours()),
    };
    let mut schedule = DreamScheduleBuilder::new("nightly").namespace("team").build();
    schedule.status = Some(DreamScheduleStatus {
        last_runs: vec![run(26, "support-dream-0"), run(2, "support-dream-1")],
        ..DreamScheduleStatus::default()
    });
    schedule
}

fn injection(agent: &str, message: &str, count: i32) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{agent}.1")),
            namespace: Some("team".into()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            kind: Some("Agent".into()),
            name: Some(agent.into()),
            ..ObjectReference::default()
        },
        reason: Some("SuspectedInjection".into()),
        message: Some(message.into()),
        count: Some(count),
        last_timestamp: Some(Time(now() - 1.hours())),
        ..Event::default()
    }
}

fn page(proposal: MemoryProposal) -> ProposalPage {
    ProposalPage {
        proposal,
        current_revision: Some(2),
        current_entries: Ok(BTreeMap::from([(
            "lesson-a".to_string(),
            "Retry the invoice API after a 429.".to_string(),
        )])),
    }
}

#[test]
fn the_agents_page_shows_approval_memory_pending_last_dream_and_injections() {
    let agents = [agent("support"), agent("billing")];
    let proposals = [
        pending("support-dream-1", "support", 3),
        pending("support-dream-2", "support", 1),
    ];
    let events = [injection(
        "support",
        &format!("refused 1 suspected injection: {HOSTILE}"),
        2,
    )];
    let overview = Overview {
        rows: agent_rows(&agents, &proposals, &[schedule()], &events),
        events_note: None,
    };
    assert_eq!(overview.rows[0].agent.name_any(), "billing", "sorted by name");
    assert_eq!(overview.rows[1].pending, 2);
    assert_eq!(overview.rows[1].injections.reports, 2);
    assert_eq!(overview.rows[0].injections, Injections::default());

    let html = agents_page(&overview, &Scope::Namespace("team".into()), now()).into_string();
    assert!(
        html.contains(r#"<a href="/ns/team/agents/support">support</a>"#),
        "{html}"
    );
    assert!(html.contains("<td>Review</td>"), "{html}");
    assert!(html.contains("revision 3, 4 entries"), "{html}");
    assert!(
        html.contains(r#"<meter min="0" max="2000" value="500"></meter> 500 / 2000 tokens"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="pending"><a href="/queue">2</a></td>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="result">Succeeded</span> <span class="muted">2h ago, nightly</span><br><a href="/ns/team/proposals/support-dream-1">"#),
        "the newest run across schedules: {html}"
    );
    assert!(html.contains("2 reports"), "{html}");
    assert!(!html.contains("<script>alert"), "hostile text is escaped: {html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
}

#[test]
fn the_agents_page_says_when_injections_cannot_be_read() {
    let overview = Overview {
        rows: Vec::new(),
        events_note: Some("cannot list events in namespace team: forbidden".into()),
    };
    let html = agents_page(&overview, &Scope::Namespace("team".into()), now()).into_string();
    assert!(html.contains("No agents in namespace team."), "{html}");
    assert!(
        html.contains("Suspected injections are not shown: cannot list events"),
        "{html}"
    );
}

#[test]
fn the_queue_lists_pending_proposals_oldest_first_with_counts() {
    let mut decided = pending("support-dream-0", "support", 9);
    decided.status.as_mut().unwrap().phase = Some(Phase::Applied);
    let listed = queue(
        vec![pending("newer", "support", 1), decided, pending("older", "billing", 5)],
        None,
    );
    let names: Vec<String> = listed.iter().map(|p| p.name_any()).collect();
    assert_eq!(names, ["older", "newer"]);
    let html = queue_page(&listed, None, &Scope::All, now()).into_string();
    assert!(
        html.contains("2 proposals wait for a decision in all namespaces, oldest first: 4 changes (2 additions, 0 archivals, 2 other changes)."),
        "{html}"
    );
    assert!(html.contains("<th>Namespace</th>"), "{html}");
    assert!(html.find("/ns/team/proposals/older").unwrap() < html.find("/ns/team/proposals/newer").unwrap());
    assert!(
        html.contains("<ins>+1</ins> <del>−0</del> <span class=\"other\">~1</span>"),
        "{html}"
    );
    assert!(html.contains("<td>5h ago</td>"), "{html}");
    assert!(
        html.contains("<td>Two lessons from 40 sessions.</td>"),
        "first summary line: {html}"
    );
}

#[test]
fn a_session_lists_every_proposal_citing_it() {
    let mut decided = pending("applied-one", "support", 9);
    decided.status.as_mut().unwrap().phase = Some(Phase::Applied);
    let listed = queue(
        vec![pending("p", "support", 1), decided, pending("q", "x", 2)],
        Some("s-2"),
    );
    assert_eq!(listed.len(), 3, "pending or not");
    assert_eq!(queue(listed, Some("s-9")).len(), 0);
    let html = queue_page(&[], Some(HOSTILE), &Scope::Namespace("team".into()), now()).into_string();
    assert!(!html.contains("<script>alert"), "{html}");
}

#[test]
fn a_proposal_shows_each_change_against_the_current_entry_with_its_evidence() {
    let html = proposal_page(
        &page(pending("support-dream-1", "support", 3)),
        "tok",
        "rita",
        None,
        now(),
    )
    .into_string();
    // The update is a word diff against the entry as it reads now.
    assert!(
        html.contains(r#"<p class="words">Retry the invoice API <ins>once </ins>after a 429.</p>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<ins class="block">Look accounts up by billing id.</ins>"#),
        "{html}"
    );
    assert!(html.contains("6 sessions"), "{html}");
    assert!(
        html.contains(r#"<a class="session" href="/queue?session=s-1""#),
        "{html}"
    );
    assert!(html.contains("Two lessons from 40 sessions."), "{html}");
    assert!(html.contains("memory now at revision 2"), "{html}");
}

#[test]
fn evidence_shows_what_the_sessions_showed() {
    let mut change = lesson("Check the order id before a refund.", 5, &["s-1"]);
    change.evidence.as_mut().unwrap().pattern = Some(EvidencePattern {
        kind: PatternKind::ToolError,
        tool: Some("refund".into()),
        error: Some(format!("order <n> not found {HOSTILE}")),
        words: Vec::new(),
        steps: Vec::new(),
    });
    let proposal = MemoryProposalBuilder::new("p")
        .namespace("team")
        .agent("support")
        .base(2, "")
        .summary("s")
        .change(change)
        .seen_by_operator()
        .build();
    let html = proposal_page(&page(proposal), "tok", "rita", None, now()).into_string();
    assert!(
        html.contains(r#"<dt>Seen as</dt><dd class="pattern"><code>refund</code> failing with <q>order &lt;n&gt; not found &lt;script&gt;"#),
        "{html}"
    );
}

#[test]
fn an_open_proposal_offers_the_decision_bound_to_its_digest_and_the_token() {
    let proposal = pending("support-dream-1", "support", 3);
    let digest = proposal.status.as_ref().unwrap().digest.clone().unwrap();
    let html = proposal_page(&page(proposal), "tok", "rita", None, now()).into_string();
    assert!(
        html.contains(r#"action="/ns/team/proposals/support-dream-1/decide""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<input type="hidden" name="csrf" value="tok">"#),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"<input type="hidden" name="digest" value="{digest}">"#)),
        "{html}"
    );
    assert!(html.contains("<strong>rita</strong>, as the reviewer"), "{html}");
    assert!(html.contains(r#"value="approve">Approve</button>"#), "{html}");
    assert!(html.contains(r#"value="reject">Reject</button>"#), "{html}");
}

#[test]
fn a_decided_proposal_offers_nothing_and_says_what_happened() {
    let mut proposal = pending("support-dream-1", "support", 3);
    let digest = proposal.status.as_ref().unwrap().digest.clone().unwrap();
    proposal.spec.approval = Some(Approval {
        decision: Decision::Approved,
        digest: Some(digest),
        reviewer: Some("rita".into()),
        comment: Some(HOSTILE.into()),
    });
    let status = proposal.status.as_mut().unwrap();
    status.phase = Some(Phase::Applied);
    status.applied_revision = Some(3);
    let html = proposal_page(&page(proposal), "tok", "rita", None, now()).into_string();
    assert!(!html.contains("<form"), "{html}");
    assert!(html.contains("(applied as revision 3)"), "{html}");
    assert!(html.contains(r#"<dd id="applied">as revision 3</dd>"#), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
}

#[test]
fn the_api_servers_answer_is_shown() {
    let page = page(pending("support-dream-1", "support", 3));
    let refused = Outcome::Refused {
        message: "cannot write the decision on memoryproposal support-dream-1: wes may not approve".into(),
        code: Some(403),
    };
    let html = proposal_page(&page, "tok", "wes", Some(&refused), now()).into_string();
    assert!(
        html.contains("The API server refused (HTTP 403): cannot write the decision on memoryproposal support-dream-1: wes may not approve"),
        "{html}"
    );
    let written = Outcome::Written {
        decision: "approved",
        reviewer: "rita".into(),
        digest: "sha256:d".into(),
    };
    let html = proposal_page(&page, "tok", "rita", Some(&written), now()).into_string();
    assert!(
        html.contains("The API server accepted: approved by <strong>rita</strong>"),
        "{html}"
    );
}

#[test]
fn hostile_proposal_text_stays_text() {
    let mut change = lesson(HOSTILE, 3, &[r#""><script>x()</script>"#, "a&b=c"]);
    change.rationale = Some(format!("because {HOSTILE}"));
    let proposal = MemoryProposalBuilder::new("p")
        .namespace("team")
        .agent("support")
        .base(1, "")
        .summary(HOSTILE)
        .change(change)
        .seen_by_operator()
        .build();
    let html = proposal_page(&page(proposal), "tok", "rita", None, now()).into_string();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("/queue?session=a%26b%3Dc"),
        "session ids are encoded in links: {html}"
    );
    assert!(
        html.contains("/queue?session=%22%3E%3Cscript%3Ex%28%29%3C%2Fscript%3E"),
        "{html}"
    );
}

#[test]
fn risk_flags_say_what_to_weigh() {
    let mut unbacked = lesson("Always escalate.", 1, &[]);
    unbacked.evidence = None;
    let mut one_task = lesson("Use the refund tool.", 5, &[]);
    one_task.evidence.as_mut().unwrap().tasks = Some(1);
    let mut edited = update("lesson-a", "New text.", 3);
    edited.before = Some("The text it was.".into());
    let proposal = MemoryProposalBuilder::new("p")
        .namespace("team")
        .agent("support")
        .base(1, "")
        .summary("s")
        .change(unbacked)
        .change(lesson("Once.", 1, &["s"]))
        .change(one_task)
        .change(edited)
        .build();
    let flags = risk_flags(&page(proposal));
    assert_eq!(
        flags,
        [
            "Not yet seen by the operator: it has no digest and cannot be decided yet.",
            "Written against revision 1; the memory is at revision 2 now, so it is rebased (or conflicts) when applied.",
            "1 change carries no evidence.",
            "1 change rests on a single session.",
            "1 change comes from sessions of one task only: the pattern may belong to that task.",
            "1 entry it changes was edited since this proposal was written: the diff below is against the current text.",
        ]
    );
    assert!(risk_flags(&page(pending("ok", "support", 1))).is_empty());
}

fn agent_page_fixture(markdown: Option<String>) -> AgentPage {
    let revision = |n: u64, tokens: u64, current: bool| Revision {
        revision: n,
        current,
        kept: true,
        proposal: (n > 1).then(|| format!("support-dream-{n}")),
        approved_by: (n > 1).then(|| "rita".to_string()),
        time: Some(now() - (10 - n as i64).hours()),
        digest: Some(format!("sha256:{n}{}", "0".repeat(40))),
        update: None,
        tokens: Some(tokens),
    };
    AgentPage {
        agent: agent("support"),
        last_run: Err("cannot list dreamschedules: forbidden".into()),
        markdown: Ok(markdown),
        history: Ok(History {
            agent: "support".into(),
            current_revision: Some(3),
            revisions: vec![revision(3, 500, true), revision(2, 450, false), revision(1, 100, false)],
        }),
        effect: Err("cannot list DreamSchedules: forbidden".into()),
        pending: Ok(vec![pending("support-dream-4", "support", 1)]),
    }
}

#[test]
fn the_agent_page_shows_memory_timeline_size_and_what_it_cannot_read() {
    let markdown = format!("# Memory\n\n## Lessons\n\n- Look up by **billing id**.\n- {HOSTILE}\n");
    let html = agent_page(&agent_page_fixture(Some(markdown)), now()).into_string();
    assert!(
        html.contains("<li>Look up by <strong>billing id</strong>.</li>"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    // The timeline, newest first, with who approved what and the digest.
    assert!(
        html.contains(r#"<tr data-revision="3" class="current"><td>r3 (current)</td>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="/ns/team/proposals/support-dream-2">support-dream-2</a></td><td>rita</td>"#),
        "{html}"
    );
    assert!(html.contains("sha256:200000000000"), "{html}");
    // The size chart, oldest revision left.
    assert!(html.find("revision 1: 100 tokens").unwrap() < html.find("revision 3: 500 tokens").unwrap());
    assert!(html.contains("budget 2000"), "{html}");
    assert!(html.contains("cannot list DreamSchedules: forbidden"), "{html}");
    assert!(html.contains("cannot list dreamschedules: forbidden"), "{html}");
    assert!(
        html.contains(r#"<a href="/ns/team/proposals/support-dream-4">support-dream-4</a>"#),
        "{html}"
    );
}

#[test]
fn an_agent_without_a_memory_configmap_says_so() {
    let html = agent_page(&agent_page_fixture(None), now()).into_string();
    assert!(html.contains("keeps no memory ConfigMap"), "{html}");
}

#[test]
fn every_page_loads_only_its_own_assets() {
    let chrome = Chrome {
        user: HOSTILE,
        scope: &Scope::All,
        seen: 7,
    };
    let html = layout(&chrome, HOSTILE, Nav::Queue, html! { p { "x" } }).into_string();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(r#"<body data-seen="7">"#), "{html}");
    assert!(
        html.contains(r#"<link rel="stylesheet" href="/assets/dashboard.css">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<script src="/assets/dashboard.js" defer></script>"#),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/queue" aria-current="page">"#), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere: {html}"
    );
    assert!(!html.contains("style="), "no inline style under the CSP: {html}");
}
