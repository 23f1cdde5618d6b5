//! The review diff of a proposal, like `git diff`: a header (agent, phase, base revision,
//! digest, summary), then `+` additions, `-` archivals and `~` other changes with their
//! evidence and rationale, and last the digest and the exact command that approves what was
//! shown. `kubectl dream diff` prints it and a GitOps pull request carries it, so a reviewer
//! reads the same text wherever they review.

use std::fmt::Write;

use kube::ResourceExt;

use crate::effect::{EffectVerdict, LessonEffect};
use crate::memory_proposal::{ChangeOp, Evidence, MemoryProposal, Phase, ProposedChange};
use crate::rules::memory_proposal::{Reviewable, reviewable};

/// How many example sessions a change shows.
pub const EXAMPLE_SESSIONS: usize = 3;

/// `1 change`, `2 changes`.
pub fn plural(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// ANSI colours, or none.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn code(self, code: &str, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn bold(self, text: &str) -> String {
        self.code("1", text)
    }
    fn green(self, text: &str) -> String {
        self.code("32", text)
    }
    fn red(self, text: &str) -> String {
        self.code("31", text)
    }
    fn yellow(self, text: &str) -> String {
        self.code("33", text)
    }
    fn cyan(self, text: &str) -> String {
        self.code("36", text)
    }
}

/// The review diff of a proposal; `color` adds ANSI colours (green `+`, red `-`, yellow `~`).
pub fn render_diff(proposal: &MemoryProposal, color: bool) -> String {
    let paint = Paint(color);
    let spec = &proposal.spec;
    let status = proposal.status.clone().unwrap_or_default();
    let name = proposal.name_any();
    let namespace = proposal.namespace().unwrap_or_else(|| "default".to_string());
    let mut out = String::new();

    let _ = writeln!(out, "{}", paint.bold(&format!("memoryproposal {namespace}/{name}")));
    let field = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{:<10}{value}", format!("{label}:"));
    };
    field(&mut out, "Agent", &spec.agent_ref.name);
    field(
        &mut out,
        "Phase",
        status.phase.map_or("- (not yet seen by the operator)", |p| p.as_str()),
    );
    let base = if spec.base_digest.is_empty() {
        format!("revision {}", spec.base_revision)
    } else {
        format!("revision {} ({})", spec.base_revision, spec.base_digest)
    };
    field(&mut out, "Base", &base);
    field(
        &mut out,
        "Digest",
        status
            .digest
            .as_deref()
            .unwrap_or("- (not yet recorded by the operator)"),
    );
    if let Some(source) = source_line(proposal) {
        field(&mut out, "Source", &source);
    }
    if let Some(stats) = &spec.stats {
        let mut parts = vec![
            plural(
                stats.sessions_reviewed as usize,
                "session reviewed",
                "sessions reviewed",
            ),
            format!("{} tokens in, {} out", stats.tokens_in, stats.tokens_out),
        ];
        if stats.lines_skipped > 0 {
            parts.push(plural(stats.lines_skipped as usize, "line skipped", "lines skipped"));
        }
        if let Some(reflector) = &stats.reflector {
            parts.push(format!("{reflector} reflector"));
        }
        if let Some(cost) = &stats.estimated_cost {
            parts.push(format!("~${cost}"));
        }
        field(&mut out, "Stats", &parts.join(", "));
    }
    if let Some(approval) = &spec.approval {
        let mut text = format!("{:?}", approval.decision);
        if let Some(reviewer) = &approval.reviewer {
            let _ = write!(text, " by {reviewer}");
        }
        if let Some(comment) = approval.comment.as_deref().filter(|c| !c.is_empty()) {
            let _ = write!(text, ": {comment:?}");
        }
        field(&mut out, "Decision", &text);
    }
    if !spec.summary.trim().is_empty() {
        out.push('\n');
        for line in spec.summary.trim_end().lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push('\n');

    for change in &spec.changes {
        render_change(&mut out, change, paint);
    }
    if !spec.changes.is_empty() {
        out.push('\n');
    }
    let (add, archive, other) = counts(&spec.changes);
    let mut totals = format!(
        "{}, {}, {}",
        plural(add, "addition", "additions"),
        plural(archive, "archival", "archivals"),
        plural(other, "other change", "other changes")
    );
    if let Some(strongest) = spec.strongest_evidence() {
        let _ = write!(
            totals,
            "; strongest evidence: {}",
            plural(strongest as usize, "session", "sessions")
        );
    }
    let _ = writeln!(out, "{totals}");
    render_effects(&mut out, &spec.effects, paint);
    out.push('\n');
    let _ = writeln!(out, "{}", paint.cyan(&last_line(proposal, &name, &namespace)));
    out
}

/// What the lessons already in memory did, next to the new changes: a regressed one in red, an
/// effective one in green.
fn render_effects(out: &mut String, effects: &[LessonEffect], paint: Paint) {
    if effects.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nEffect of the lessons in memory:");
    for effect in effects {
        let verdict = match effect.verdict {
            EffectVerdict::Regressed => paint.red("regressed"),
            EffectVerdict::Effective => paint.green("effective"),
            EffectVerdict::NoEffect => paint.yellow("no-effect"),
            EffectVerdict::TooEarly => "too-early".to_string(),
        };
        let _ = writeln!(out, "  {verdict} {}: {}", effect.id, effect.summary);
    }
}

/// Where the proposal came from, when it says.
fn source_line(proposal: &MemoryProposal) -> Option<String> {
    let source = proposal.spec.source.as_ref()?;
    let mut parts = Vec::new();
    if let Some(schedule) = &source.dream_schedule {
        parts.push(format!("dream schedule {schedule}"));
    }
    if let Some(job) = &source.job {
        parts.push(format!("job {job}"));
    }
    if let Some(supersedes) = &source.supersedes {
        parts.push(format!("supersedes {supersedes}"));
    }
    if let Some(revision) = source.restores_revision {
        parts.push(format!("restores revision {revision}"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The last line: the digest and the exact approve command, or why there is nothing to approve.
pub fn last_line(proposal: &MemoryProposal, name: &str, namespace: &str) -> String {
    let status = proposal.status.clone().unwrap_or_default();
    match reviewable(proposal) {
        Reviewable::Unseen => format!(
            "No digest yet: the operator has not seen this proposal; run `kubectl dream diff {name} -n {namespace}` again once it has."
        ),
        Reviewable::Tampered { digest } => format!(
            "Tampered: the content no longer matches digest {digest} recorded at first sight; it can never be approved."
        ),
        Reviewable::Decided { digest, approval } => {
            let by = approval
                .reviewer
                .as_deref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default();
            let now = match (status.phase.filter(|p| *p != Phase::Pending), status.applied_revision) {
                (Some(Phase::Applied), Some(revision)) => format!(" (applied as revision {revision})"),
                (Some(phase), _) => format!(" (now {})", phase.as_str()),
                (None, _) => String::new(),
            };
            format!(
                "Digest {digest}: {:?}{by}; the decision is final{now}.",
                approval.decision
            )
        }
        Reviewable::Settled { digest, phase } => {
            let by = status
                .approved_by
                .as_deref()
                .map(|r| format!(" (approved by {r})"))
                .unwrap_or_default();
            format!(
                "Digest {digest}: the proposal is {}{by}; nothing to decide.",
                phase.as_str()
            )
        }
        Reviewable::Open { digest } => format!(
            "Digest {digest}. To approve exactly this: kubectl dream approve {name} -n {namespace} --digest {digest}"
        ),
    }
}

/// Additions, archivals and other changes (update, merge, move, reinforce).
pub fn counts(changes: &[ProposedChange]) -> (usize, usize, usize) {
    changes
        .iter()
        .fold((0, 0, 0), |(add, archive, other), change| match change.op {
            ChangeOp::Add => (add + 1, archive, other),
            ChangeOp::Archive => (add, archive + 1, other),
            _ => (add, archive, other + 1),
        })
}

/// Writes `text` after `prefix`, continuing each further line of it under the same prefix.
fn lines(out: &mut String, prefix: &str, text: &str, paint: impl Fn(&str) -> String) {
    let mut text_lines = text.lines();
    let first = text_lines.next().unwrap_or_default();
    let _ = writeln!(out, "{}", paint(&format!("{prefix}{first}")));
    let width = prefix.chars().count();
    let indent = prefix.len() - prefix.trim_start().len();
    let lead = match prefix.trim_start().chars().next() {
        Some(sign @ ('+' | '-' | '~')) => format!("{}{sign}{}", " ".repeat(indent), " ".repeat(width - indent - 1)),
        _ => " ".repeat(width),
    };
    for line in text_lines {
        let _ = writeln!(out, "{}", paint(&format!("{lead}{line}")));
    }
}

fn render_change(out: &mut String, change: &ProposedChange, paint: Paint) {
    let section = change.section.as_deref().map(|s| format!("[{s}] ")).unwrap_or_default();
    let id = change.id.as_deref().unwrap_or("(no id)");
    let after = change.after.as_deref().unwrap_or_default();
    let before = change.before.as_deref();
    let green = |t: &str| paint.green(t);
    let red = |t: &str| paint.red(t);
    let yellow = |t: &str| paint.yellow(t);
    match change.op {
        ChangeOp::Add => lines(out, &format!("+ {section}"), after, green),
        ChangeOp::Archive => match before {
            Some(text) => lines(out, &format!("- {section}{id}: "), text, red),
            None => lines(out, &format!("- {section}"), id, red),
        },
        ChangeOp::Update => {
            lines(out, &format!("~ {section}update "), id, yellow);
            if let Some(text) = before {
                lines(out, "    - ", text, red);
            }
            lines(out, "    + ", after, green);
        }
        ChangeOp::Merge => {
            lines(
                out,
                &format!("~ {section}merge {} into ", change.ids.join(", ")),
                id,
                yellow,
            );
            if let Some(text) = before {
                lines(out, "    - ", text, red);
            }
            lines(out, "    + ", after, green);
        }
        ChangeOp::Move => {
            let to = change.section.as_deref().unwrap_or("?");
            lines(out, "~ move ", &format!("{id} to [{to}]"), yellow);
            if let Some(text) = change.after.as_deref().or(before) {
                lines(out, "    ", text, |t: &str| t.to_string());
            }
        }
        ChangeOp::Reinforce => {
            let text = change.after.as_deref().or(before).unwrap_or_default();
            if text.is_empty() {
                lines(out, &format!("~ {section}reinforce "), id, yellow);
            } else {
                lines(out, &format!("~ {section}reinforce {id}: "), text, yellow);
            }
        }
    }
    match (&change.evidence, change.op) {
        (Some(evidence), _) => {
            let _ = writeln!(out, "    evidence: {}", evidence_text(evidence));
        }
        (None, ChangeOp::Archive | ChangeOp::Move) => {}
        (None, _) => {
            let _ = writeln!(out, "    evidence: none");
        }
    }
    if let Some(rationale) = change.rationale.as_deref().filter(|r| !r.trim().is_empty()) {
        let mut rationale_lines = rationale.trim_end().lines();
        let _ = writeln!(out, "    rationale: {}", rationale_lines.next().unwrap_or_default());
        for line in rationale_lines {
            let _ = writeln!(out, "               {line}");
        }
    }
}

/// `7 sessions (e.g. s1, s2, s3)`.
pub fn evidence_text(evidence: &Evidence) -> String {
    let mut text = plural(evidence.count as usize, "session", "sessions");
    if !evidence.sessions.is_empty() {
        let examples: Vec<&str> = evidence
            .sessions
            .iter()
            .take(EXAMPLE_SESSIONS)
            .map(String::as_str)
            .collect();
        let _ = write!(text, " (e.g. {})", examples.join(", "));
    }
    if let Some(tasks) = evidence.tasks {
        let _ = write!(text, ", {tasks} tasks");
    }
    if let Some(segment) = &evidence.segment {
        let _ = write!(text, ", all labelled {segment}");
    }
    if let Some(numbers) = &evidence.numbers {
        let _ = write!(text, " — {numbers}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_shows_its_tasks_segment_and_numbers() {
        let evidence: Evidence = serde_json::from_value(serde_json::json!({
            "count": 15, "sessions": ["s-1", "s-2"], "tasks": 15, "segment": "model=gpt-4.1",
            "numbers": "got past it in 15 of 15 sessions"
        }))
        .unwrap();
        assert_eq!(
            evidence_text(&evidence),
            "15 sessions (e.g. s-1, s-2), 15 tasks, all labelled model=gpt-4.1 — got past it in 15 of 15 sessions"
        );
        let plain: Evidence = serde_json::from_value(serde_json::json!({"count": 3})).unwrap();
        assert_eq!(evidence_text(&plain), "3 sessions");
    }

    #[test]
    fn the_effect_of_the_lessons_in_memory_follows_the_changes() {
        let proposal: MemoryProposal = serde_json::from_value(serde_json::json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"agentRef": {"name": "support"}, "baseRevision": 3, "baseDigest": "sha256:ab",
                "summary": "s", "changes": [{"op": "Archive", "id": "lesson-2",
                    "rationale": "regressed: cut its mistake from 40% to 5% of sessions"}],
                "effects": [
                    {"id": "lesson-2", "text": "t", "adopted": "2026-11-20T10:00:00Z",
                     "before": {"sessions": 40, "occurrences": 16}, "after": {"sessions": 20, "occurrences": 1},
                     "verdict": "regressed", "summary": "cut its mistake from 40% to 5% of sessions"},
                    {"id": "lesson-1", "text": "t", "adopted": "2026-11-20T10:00:00Z",
                     "before": {"sessions": 40, "occurrences": 12}, "after": {"sessions": 20, "occurrences": 1},
                     "verdict": "effective", "summary": "cut its mistake from 30% to 5% of sessions"}]}
        }))
        .unwrap();
        let diff = render_diff(&proposal, false);
        let effects = diff
            .split("Effect of the lessons in memory:\n")
            .nth(1)
            .expect("an effect block");
        assert!(
            effects.starts_with(
                "  regressed lesson-2: cut its mistake from 40% to 5% of sessions\n  effective lesson-1: cut its mistake from 30% to 5% of sessions\n"
            ),
            "{diff}"
        );
    }

    #[test]
    fn multi_line_texts_keep_their_sign_on_every_line() {
        let mut out = String::new();
        lines(&mut out, "+ [lessons] ", "first\nsecond", |t: &str| t.to_string());
        lines(&mut out, "    - ", "old\nolder", |t: &str| t.to_string());
        assert_eq!(out, "+ [lessons] first\n+           second\n    - old\n    - older\n");
    }
}
