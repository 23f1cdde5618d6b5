//! The dashboard's pages as HTML, from the data [`super::read`] assembled: pure functions, so
//! every page is tested without a cluster or a browser.
//!
//! Every string from the cluster is hostile (memory text was learned from customers'
//! transcripts): maud escapes all of it, and Markdown goes through [`super::markdown`]. Regions
//! marked `data-live` are the ones the page's script swaps in when the cluster changes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::ResourceExt;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::Scope;
use super::chart::{Bar, size_chart};
use super::markdown;
use super::read::{AgentPage, AgentRow, LastRun, Overview, Part, ProposalPage};
use super::word_diff::{Piece, word_diff};
use crate::api::effect::{EffectVerdict, EvidencePattern, LessonEffect, PatternKind};
use crate::api::memory_proposal::{ChangeOp, Evidence, MemoryProposal, ProposedChange};
use crate::api::review::{counts, last_line, plural};
use crate::api::rules::memory_proposal::{Reviewable, reviewable};
use crate::cli::kubectl_dream::history::{EffectHistory, History, short_digest};
use crate::cli::kubectl_dream::short_age;
use crate::dream::effect::EffectRow;

/// What every page shows around its content: who is acting, over which namespaces.
pub struct Chrome<'a> {
    pub user: &'a str,
    pub scope: &'a Scope,
    /// The count of cluster changes the page's data is at least as new as.
    pub seen: u64,
}

/// The navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Agents,
    Queue,
}

/// The answer to an Approve or Reject, shown above the proposal.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The API server accepted the decision.
    Written {
        decision: &'static str,
        reviewer: String,
        digest: String,
    },
    /// Refused: by the dashboard's checks, or by the API server (with its HTTP status).
    Refused { message: String, code: Option<u16> },
}

pub fn proposal_href(namespace: &str, name: &str) -> String {
    format!("/ns/{namespace}/proposals/{name}")
}

pub fn agent_href(namespace: &str, name: &str) -> String {
    format!("/ns/{namespace}/agents/{name}")
}

/// The queue of the proposals citing a session (session ids are free text: encoded).
pub fn session_href(session: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("session", session)
        .finish();
    format!("/queue?{query}")
}

/// A whole page: head, navigation, and `body` as its main content.
pub fn layout(chrome: &Chrome, title: &str, active: Nav, body: Markup) -> Markup {
    let current = |nav: Nav| (nav == active).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · reverie" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body data-seen=(chrome.seen) {
                header.top {
                    a.brand href="/" { "reverie" }
                    nav {
                        a href="/" aria-current=[current(Nav::Agents)] { "Agents" }
                        a href="/queue" aria-current=[current(Nav::Queue)] { "Review queue" }
                    }
                    span.who { (chrome.scope.describe()) " · acting as " strong #user { (chrome.user) } }
                    span #live-status .live-status role="status" { "" }
                }
                main { (body) }
            }
        }
    }
}

/// A page that could not be shown, and why.
pub fn problem(title: &str, message: &str) -> Markup {
    html! {
        h1 { (title) }
        p.problem role="alert" { (message) }
    }
}

fn note_or<T>(part: &Part<T>, render: impl FnOnce(&T) -> Markup) -> Markup {
    match part {
        Ok(value) => render(value),
        Err(message) => html! { p.note { (message) } },
    }
}

fn age(time: Option<Timestamp>, now: Timestamp) -> String {
    time.map_or_else(|| "-".to_string(), |t| format!("{} ago", short_age(t, now)))
}

// ---------------------------------------------------------------------------------------------
// Agents

/// Every agent: approval mode, memory, pending proposals, last dream, suspected injections.
pub fn agents_page(overview: &Overview, scope: &Scope, now: Timestamp) -> Markup {
    let all = *scope == Scope::All;
    html! {
        h1 { "Agents" }
        section #agents data-live {
            @if overview.rows.is_empty() {
                p.empty { "No agents in " (scope.describe()) "." }
            } @else {
                table.list {
                    thead { tr {
                        th { "Agent" }
                        @if all { th { "Namespace" } }
                        th { "Approval" } th { "Memory" } th { "Size" } th { "Pending" } th { "Last dream" } th { "Suspected injections" }
                    } }
                    tbody {
                        @for row in &overview.rows { (agent_row(row, all, now)) }
                    }
                }
            }
            @if let Some(note) = &overview.events_note {
                p.note { "Suspected injections are not shown: " (note) }
            }
        }
    }
}

fn agent_row(row: &AgentRow, all: bool, now: Timestamp) -> Markup {
    let agent = &row.agent;
    let namespace = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let status = agent.status.clone().unwrap_or_default();
    let budget = agent.spec.memory.max_tokens;
    html! {
        tr data-agent=(name) {
            td { a href=(agent_href(&namespace, &name)) { (name) } }
            @if all { td { (namespace) } }
            td { (format!("{:?}", agent.spec.dreaming.approval)) }
            td {
                @match &status.memory {
                    Some(memory) => { "revision " (memory.revision) ", " (plural(memory.entries as usize, "entry", "entries")) }
                    None => { span.muted { "not yet written" } }
                }
            }
            td {
                @if let Some(memory) = &status.memory {
                    meter min="0" max=(budget) value=(memory.tokens.min(u64::from(budget))) {}
                    " " (memory.tokens) " / " (budget) " tokens"
                }
            }
            td.pending {
                @if row.pending > 0 { a href="/queue" { (row.pending) } } @else { "0" }
            }
            td { (last_run_view(row.last_run.as_ref(), &namespace, now)) }
            td.injections {
                @if row.injections.reports == 0 {
                    span.muted { "none" }
                } @else {
                    details {
                        summary.warning { (plural(row.injections.reports as usize, "report", "reports")) }
                        @if let Some(latest) = &row.injections.latest { p { (latest) } }
                    }
                }
            }
        }
    }
}

/// The newest dream pass: result, when, by which schedule, and what it proposed.
fn last_run_view(last: Option<&LastRun>, namespace: &str, now: Timestamp) -> Markup {
    let Some(LastRun { schedule, run }) = last else {
        return html! { span.muted { "never" } };
    };
    html! {
        span.result title=[run.message.as_deref()] { (run.result) } " " span.muted { (age(Some(run.time.0), now)) ", " (schedule) }
        @if let Some(proposal) = &run.proposal {
            br; a href=(proposal_href(namespace, proposal)) { (proposal) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The review queue

/// Pending proposals oldest first with their counts; or the proposals citing one session.
pub fn queue_page(proposals: &[MemoryProposal], session: Option<&str>, scope: &Scope, now: Timestamp) -> Markup {
    let all = *scope == Scope::All;
    let changes: Vec<(usize, usize, usize)> = proposals.iter().map(|p| counts(&p.spec.changes)).collect();
    let (add, archive, other) = changes.iter().fold((0, 0, 0), |t, c| (t.0 + c.0, t.1 + c.1, t.2 + c.2));
    html! {
        @match session {
            Some(session) => {
                h1 { "Proposals citing session " code { (session) } }
                p { a href="/queue" { "Back to the review queue" } }
            }
            None => { h1 { "Review queue" } }
        }
        section #queue data-live {
            p.counts {
                @if session.is_none() {
                    (plural(proposals.len(), "proposal waits", "proposals wait")) " for a decision in " (scope.describe()) ", oldest first"
                } @else {
                    (plural(proposals.len(), "proposal", "proposals"))
                }
                @if !proposals.is_empty() {
                    ": " (plural(add + archive + other, "change", "changes")) " ("
                    (plural(add, "addition", "additions")) ", " (plural(archive, "archival", "archivals")) ", "
                    (plural(other, "other change", "other changes")) ")"
                }
                "."
            }
            @if !proposals.is_empty() {
                table.list {
                    thead { tr {
                        th { "Proposal" } @if all { th { "Namespace" } } th { "Agent" } th { "Changes" } th { "Strongest evidence" } th { "Age" } th { "Summary" }
                    } }
                    tbody {
                        @for (proposal, (add, archive, other)) in proposals.iter().zip(&changes) {
                            @let namespace = proposal.namespace().unwrap_or_default();
                            @let name = proposal.name_any();
                            tr data-proposal=(name) {
                                td { a href=(proposal_href(&namespace, &name)) { (name) } }
                                @if all { td { (namespace) } }
                                td { a href=(agent_href(&namespace, &proposal.spec.agent_ref.name)) { (proposal.spec.agent_ref.name) } }
                                td.counts { ins { "+" (add) } " " del { "−" (archive) } " " span.other { "~" (other) } }
                                td { (proposal.spec.strongest_evidence().map_or("-".to_string(), |n| plural(n as usize, "session", "sessions"))) }
                                td { (age(proposal.creation_timestamp().map(|t| t.0), now)) }
                                td { (proposal.spec.summary.lines().next().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A proposal

/// What a reviewer should weigh before deciding, in plain words.
pub fn risk_flags(page: &ProposalPage) -> Vec<String> {
    let proposal = &page.proposal;
    let spec = &proposal.spec;
    let mut flags = Vec::new();
    match reviewable(proposal) {
        Reviewable::Tampered { .. } => flags
            .push("Tampered: its content no longer matches the digest recorded when the operator first saw it.".into()),
        Reviewable::Unseen => {
            flags.push("Not yet seen by the operator: it has no digest and cannot be decided yet.".into())
        }
        _ => {}
    }
    if let Some(current) = page.current_revision
        && current != spec.base_revision
    {
        flags.push(format!(
            "Written against revision {}; the memory is at revision {current} now, so it is rebased (or conflicts) when applied.",
            spec.base_revision
        ));
    }
    if let Some(revision) = spec.source.as_ref().and_then(|s| s.restores_revision) {
        flags.push(format!("A rollback: it restores revision {revision}."));
    }
    let learned = spec
        .changes
        .iter()
        .filter(|c| matches!(c.op, ChangeOp::Add | ChangeOp::Update | ChangeOp::Merge));
    let unbacked = learned.clone().filter(|c| c.evidence.is_none()).count();
    if unbacked > 0 {
        flags.push(format!(
            "{} no evidence.",
            plural(unbacked, "change carries", "changes carry")
        ));
    }
    let evidence: Vec<&Evidence> = learned.filter_map(|c| c.evidence.as_ref()).collect();
    let single = evidence.iter().filter(|e| e.count <= 1).count();
    if single > 0 {
        flags.push(format!(
            "{} on a single session.",
            plural(single, "change rests", "changes rest")
        ));
    }
    let one_task = evidence.iter().filter(|e| e.count > 1 && e.tasks == Some(1)).count();
    if one_task > 0 {
        flags.push(format!(
            "{} from sessions of one task only: the pattern may belong to that task.",
            plural(one_task, "change comes", "changes come")
        ));
    }
    if let Ok(current) = &page.current_entries {
        let edited = spec
            .changes
            .iter()
            .filter(|c| {
                let now = c.id.as_ref().and_then(|id| current.get(id));
                matches!((now, &c.before), (Some(now), Some(before)) if now.trim() != before.trim())
            })
            .count();
        if edited > 0 {
            flags.push(format!(
                "{} edited since this proposal was written: the diff below is against the current text.",
                plural(edited, "entry it changes was", "entries it changes were")
            ));
        }
    }
    let regressed = spec
        .effects
        .iter()
        .filter(|e| e.verdict == EffectVerdict::Regressed)
        .count();
    if regressed > 0 {
        flags.push(format!(
            "{} in memory made outcomes worse (see the effect below).",
            plural(regressed, "lesson", "lessons")
        ));
    }
    flags
}

/// A proposal: summary, each change as a diff against the current entry with its evidence, the
/// risk flags, the effect of the lessons in memory, and the decision form.
pub fn proposal_page(page: &ProposalPage, csrf: &str, user: &str, outcome: Option<&Outcome>, now: Timestamp) -> Markup {
    let proposal = &page.proposal;
    let spec = &proposal.spec;
    let status = proposal.status.clone().unwrap_or_default();
    let namespace = proposal.namespace().unwrap_or_default();
    let name = proposal.name_any();
    let current = page.current_entries.as_ref().ok();
    let flags = risk_flags(page);
    html! {
        h1 { "memoryproposal " span.muted { (namespace) "/" } (name) }
        @if let Some(outcome) = outcome { (outcome_banner(outcome)) }
        section #proposal-header data-live {
            dl.facts {
                dt { "Agent" } dd { a href=(agent_href(&namespace, &spec.agent_ref.name)) { (spec.agent_ref.name) } }
                dt { "Phase" } dd #phase { (status.phase.map_or("- (not yet seen by the operator)", |p| p.as_str())) }
                dt { "Base" } dd { "revision " (spec.base_revision) @if let Some(now) = page.current_revision { span.muted { " (memory now at revision " (now) ")" } } }
                dt { "Digest" } dd { code { (status.digest.as_deref().unwrap_or("- (not yet recorded)")) } }
                dt { "Created" } dd { (age(proposal.creation_timestamp().map(|t| t.0), now)) }
                @if let Some(stats) = &spec.stats {
                    dt { "Pass" } dd { (plural(stats.sessions_reviewed as usize, "session reviewed", "sessions reviewed")) ", " (stats.tokens_in) " tokens in, " (stats.tokens_out) " out" }
                }
                @if let Some(approval) = &spec.approval {
                    dt { "Decision" } dd #decision-recorded {
                        (format!("{:?}", approval.decision))
                        @if let Some(reviewer) = &approval.reviewer { " by " strong { (reviewer) } }
                        @if let Some(comment) = approval.comment.as_deref().filter(|c| !c.is_empty()) { ": " q { (comment) } }
                    }
                }
                @if let Some(revision) = status.applied_revision {
                    dt { "Applied" } dd #applied { "as revision " (revision) }
                }
            }
            @if !spec.summary.trim().is_empty() { p.summary { (spec.summary.trim()) } }
            @if !flags.is_empty() {
                section.flags aria-label="Risk flags" {
                    h2 { "Risk flags" }
                    ul { @for flag in &flags { li { (flag) } } }
                }
            }
        }
        section #changes {
            @let (add, archive, other) = counts(&spec.changes);
            h2 { "Changes " span.muted { "(" (plural(add, "addition", "additions")) ", " (plural(archive, "archival", "archivals")) ", " (plural(other, "other change", "other changes")) ")" } }
            @if let Err(note) = &page.current_entries { p.note { "Diffs are against the text the proposal recorded: " (note) } }
            @for change in &spec.changes {
                (change_view(change, current))
            }
        }
        @if !spec.effects.is_empty() {
            section #effects {
                h2 { "Effect of the lessons in memory" }
                (effects_table(&spec.effects))
            }
        }
        section #decision data-live {
            h2 { "Decision" }
            @match reviewable(proposal) {
                Reviewable::Open { digest } => {
                    form.decide method="post" action={(proposal_href(&namespace, &name)) "/decide"} {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="digest" value=(digest);
                        p { "Your decision records digest " code { (digest) } " (exactly what this page shows) and you, " strong { (user) } ", as the reviewer." }
                        label for="comment" { "Comment (why)" }
                        textarea #comment name="comment" rows="2" {}
                        div.buttons {
                            button.approve type="submit" name="verdict" value="approve" { "Approve" }
                            button.reject type="submit" name="verdict" value="reject" { "Reject" }
                        }
                    }
                }
                _ => { p #settled { (last_line(proposal, &name, &namespace)) } }
            }
        }
    }
}

fn outcome_banner(outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Written {
            decision,
            reviewer,
            digest,
        } => html! {
            p #outcome .outcome.ok role="status" {
                "The API server accepted: " (decision) " by " strong { (reviewer) } " (digest " code { (digest) } ")."
            }
        },
        Outcome::Refused { message, code } => html! {
            p #outcome .outcome.refused role="alert" {
                @match code {
                    Some(code) => { "The API server refused (HTTP " (code) "): " }
                    None => { "Not sent: " }
                }
                (message)
            }
        },
    }
}

fn change_view(change: &ProposedChange, current: Option<&BTreeMap<String, String>>) -> Markup {
    let id = change.id.as_deref().unwrap_or("(no id)");
    let now_text = change.id.as_ref().and_then(|id| current?.get(id)).map(String::as_str);
    let before = now_text.or(change.before.as_deref());
    let after = change.after.as_deref().unwrap_or_default();
    let (class, label) = match change.op {
        ChangeOp::Add => ("add", "add"),
        ChangeOp::Archive => ("archive", "archive"),
        ChangeOp::Update => ("update", "update"),
        ChangeOp::Merge => ("update", "merge"),
        ChangeOp::Move => ("other", "move"),
        ChangeOp::Reinforce => ("other", "reinforce"),
    };
    html! {
        article class={"change " (class)} {
            header {
                span.op { (label) }
                " " code.id { (id) }
                @if let Some(section) = &change.section { " in " span.section { (section) } }
                @if change.op == ChangeOp::Merge { " ← " code { (change.ids.join(", ")) } }
            }
            div.diff {
                @match change.op {
                    ChangeOp::Add => { ins.block { (after) } }
                    ChangeOp::Archive => { del.block { (before.unwrap_or(id)) } }
                    ChangeOp::Update | ChangeOp::Merge => {
                        p.words {
                            @for piece in word_diff(before.unwrap_or_default(), after) {
                                @match piece {
                                    Piece::Same(text) => { (text) }
                                    Piece::Removed(text) => { del { (text) } }
                                    Piece::Added(text) => { ins { (text) } }
                                }
                            }
                        }
                    }
                    ChangeOp::Move | ChangeOp::Reinforce => {
                        p.block { (if after.is_empty() { before.unwrap_or_default() } else { after }) }
                    }
                }
            }
            @if let Some(evidence) = &change.evidence { (evidence_view(evidence)) }
            @if let Some(rationale) = change.rationale.as_deref().filter(|r| !r.trim().is_empty()) {
                p.rationale { span.label { "Rationale: " } (rationale.trim()) }
            }
        }
    }
}

fn evidence_view(evidence: &Evidence) -> Markup {
    let day = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| t.0.strftime("%Y-%m-%d").to_string();
    html! {
        dl.evidence {
            dt { "Evidence" }
            dd.count {
                (plural(evidence.count as usize, "session", "sessions"))
                @if let Some(tasks) = evidence.tasks { ", " (plural(tasks as usize, "task", "tasks")) }
                @if let (Some(first), Some(last)) = (&evidence.first_seen, &evidence.last_seen) { span.muted { ", seen " (day(first)) " to " (day(last)) } }
            }
            @if let Some(pattern) = &evidence.pattern { dt { "Seen as" } dd.pattern { (pattern_view(pattern)) } }
            @if let Some(segment) = &evidence.segment { dt { "Holds for" } dd { code { (segment) } } }
            @if let Some(numbers) = &evidence.numbers { dt { "Numbers" } dd { pre.numbers { (numbers) } } }
            @if !evidence.sessions.is_empty() {
                dt { "Example sessions" }
                dd.sessions {
                    @for session in &evidence.sessions {
                        a.session href=(session_href(session)) title="Every proposal citing this session" { (session) } " "
                    }
                }
            }
        }
    }
}

/// What the sessions showed, as the pass counted it: the excerpt a proposal carries (masked
/// errors, content words, tool steps; never a customer's raw text).
fn pattern_view(pattern: &EvidencePattern) -> Markup {
    let tool = pattern.tool.as_deref().unwrap_or("?");
    match pattern.kind {
        PatternKind::ToolError => html! {
            code { (tool) } " failing with " q { (pattern.error.as_deref().unwrap_or_default()) }
        },
        PatternKind::Statement => html! { "a statement in the words " q { (pattern.words.join(" ")) } },
        PatternKind::Sequence => html! { code { (pattern.steps.join(" → ")) } },
        PatternKind::Action => html! { "calls to " code { (tool) } },
    }
}

/// Lesson effects as the terminal shows them, with the sentence that explains each.
fn effects_table(effects: &[LessonEffect]) -> Markup {
    html! {
        table.list.effects {
            thead { tr { @for title in EffectRow::HEADER { th { (title) } } } }
            tbody {
                @for effect in effects {
                    @let cells = effect.row().cells();
                    tr class={"verdict-" (crate::dream::effect::Verdict::from(effect.verdict).as_str())} title=(effect.summary) {
                        @for cell in cells { td { (cell) } }
                    }
                }
            }
        }
        ul.effect-sentences { @for effect in effects { li { code { (effect.id) } ": " (effect.summary) } } }
    }
}

// ---------------------------------------------------------------------------------------------
// An agent's memory

/// An agent: its memory rendered, the revision timeline, size per revision, lesson effect.
pub fn agent_page(page: &AgentPage, now: Timestamp) -> Markup {
    let agent = &page.agent;
    let namespace = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let status = agent.status.clone().unwrap_or_default();
    let budget = agent.spec.memory.max_tokens;
    html! {
        h1 { "agent " span.muted { (namespace) "/" } (name) }
        section #agent-facts data-live {
            dl.facts {
                dt { "Approval" } dd { (format!("{:?}", agent.spec.dreaming.approval)) }
                dt { "Memory" } dd {
                    @match &status.memory {
                        Some(m) => {
                            "revision " span #revision { (m.revision) } ", " (plural(m.entries as usize, "entry", "entries")) ", "
                            meter min="0" max=(budget) value=(m.tokens.min(u64::from(budget))) {} " " (m.tokens) " of " (budget) " tokens"
                        }
                        None => { "not yet written" }
                    }
                }
                dt { "Last dream" } dd { (note_or(&page.last_run, |run| last_run_view(run.as_ref(), &namespace, now))) }
                dt { "Pending" } dd {
                    (note_or(&page.pending, |pending| html! {
                        @if pending.is_empty() { "none" }
                        @for p in pending { a href=(proposal_href(&namespace, &p.name_any())) { (p.name_any()) } " " }
                    }))
                }
            }
        }
        section #timeline data-live {
            h2 { "Memory size per revision" }
            (note_or(&page.history, |history| size_view(history, u64::from(budget))))
            h2 { "Revisions" }
            (note_or(&page.history, |history| timeline(history, &namespace, now)))
        }
        section #effect data-live {
            h2 { "Lesson effect" }
            (note_or(&page.effect, |effect| effect_view(effect, &namespace, now)))
        }
        section #memory data-live {
            h2 { "MEMORY.md" }
            (note_or(&page.markdown, |markdown| match markdown {
                Some(text) => html! { article.memory { (PreEscaped(markdown::render(text))) } },
                None => html! { p.note { "This agent's store keeps no memory ConfigMap to read it from." } },
            }))
        }
    }
}

fn size_view(history: &History, budget: u64) -> Markup {
    let bars: Vec<Bar> = history
        .revisions
        .iter()
        .rev()
        .filter_map(|r| {
            Some(Bar {
                revision: r.revision,
                tokens: r.tokens?,
                current: r.current,
            })
        })
        .collect();
    if bars.is_empty() {
        return html! { p.note { "No revision records its size." } };
    }
    size_chart(&bars, budget)
}

fn timeline(history: &History, namespace: &str, now: Timestamp) -> Markup {
    html! {
        table.list.timeline {
            thead { tr { th { "Revision" } th { "When" } th { "From" } th { "Approved by" } th { "Digest" } th { "Tokens" } } }
            tbody {
                @for r in &history.revisions {
                    tr data-revision=(r.revision) class=[r.current.then_some("current")] {
                        td { "r" (r.revision) @if r.current { " (current)" } }
                        td { (age(r.time, now)) }
                        td {
                            @match (&r.proposal, &r.update) {
                                (Some(p), _) => { a href=(proposal_href(namespace, p)) { (p) } }
                                (None, Some(update)) => { (update) }
                                (None, None) => { "-" }
                            }
                        }
                        td { (r.approved_by.as_deref().unwrap_or("-")) }
                        td { code title=[r.digest.as_deref()] { (r.digest.as_deref().map_or("-".to_string(), short_digest)) } }
                        td { (r.tokens.map_or("-".to_string(), |t| t.to_string())) }
                    }
                }
            }
        }
    }
}

fn effect_view(effect: &EffectHistory, namespace: &str, now: Timestamp) -> Markup {
    html! {
        @if let Some(pass) = &effect.latest_pass {
            p { "The latest pass that measured (" (pass.job) ", " (age(Some(pass.time), now)) ") found " (pass.lessons.to_string()) "." }
        }
        @match &effect.measured_by {
            Some(proposal) => {
                p { "Measured by the pass of " a href=(proposal_href(namespace, proposal)) { (proposal) } " (" (age(effect.measured_at, now)) ")." }
                (effects_table(&effect.lessons))
            }
            None => { p.note { "Not measured yet: a pass records it once the memory holds lessons learned from sessions." } }
        }
    }
}

#[cfg(test)]
#[path = "views_tests.rs"]
mod tests;
