//! What a pass shows a person or a program: the review diff (text) and the stable JSON/YAML
//! contract (`summary`, `stats`, `changes`), each change with its op, section, resulting text
//! and evidence.

use std::fmt::Write;

use serde::Serialize;

use super::pass::{PassOutcome, PassStats};
use crate::memory::MemoryDocument;
use crate::memory::change::Change;

/// One change as shown to reviewers and written to JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeView {
    /// `Add`, `Update`, `Archive`, `Merge`, `Move` or `Reinforce`.
    pub op: &'static str,
    pub id: String,
    /// The section the entry is in after the change (for an archival: the one it left).
    pub section: String,
    /// The entry text the change results in (for an archival: the text archived).
    pub text: String,
    pub evidence: EvidenceView,
    /// Merge: the entries folded in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    pub rationale: String,
}

/// Evidence as shown: distinct sessions, example ids, and the numbers behind the lesson.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvidenceView {
    pub count: u32,
    pub sessions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

impl EvidenceView {
    /// The evidence line of the review diff: sessions, tasks, segment and numbers.
    pub fn line(&self) -> String {
        let mut line = format!("{} sessions", self.count);
        if let Some(tasks) = self.tasks {
            line.push_str(&format!(", {tasks} tasks"));
        }
        if let Some(segment) = &self.segment {
            line.push_str(&format!(", all labelled {segment}"));
        }
        if let Some(numbers) = &self.numbers {
            line.push_str(&format!(" — {numbers}"));
        }
        line
    }
}

impl ChangeView {
    /// Describes `change`, looking entries up in the memory before and after.
    pub fn of(change: &Change, before: &MemoryDocument, after: &MemoryDocument) -> Self {
        let located = |id: &str| -> (String, String, EvidenceView) {
            let found = after
                .find(id)
                .map(|(s, e)| (s.name.clone(), e))
                .or_else(|| before.find(id).map(|(s, e)| (s.name.clone(), e)));
            match found {
                Some((section, entry)) => (
                    section,
                    entry.text.clone(),
                    EvidenceView {
                        count: entry.evidence.count,
                        sessions: entry.evidence.sessions.clone(),
                        tasks: entry.evidence.tasks,
                        numbers: entry.evidence.numbers.clone(),
                        segment: entry.evidence.segment.clone(),
                    },
                ),
                None => (String::new(), String::new(), EvidenceView::default()),
            }
        };
        let (op, id) = (change.op_name(), change.id().to_string());
        let (section, text, evidence) = located(&id);
        let (merged, rationale) = match change {
            Change::Add { .. } => (
                Vec::new(),
                "recurs across sessions and is not in memory yet".to_string(),
            ),
            Change::Update { .. } => (Vec::new(), "the entry's text changes".to_string()),
            Change::Reinforce { .. } => (Vec::new(), "seen again: evidence updated".to_string()),
            Change::Archive { reason, .. } => (Vec::new(), reason.clone()),
            Change::Merge { from, .. } => (from.clone(), "near-duplicate entries merged".to_string()),
            Change::Move { to, .. } => (Vec::new(), format!("belongs in {to}")),
        };
        let section = match change {
            Change::Archive { id, .. } => before.find(id).map(|(s, _)| s.name.clone()).unwrap_or(section),
            _ => section,
        };
        Self {
            op,
            id,
            section,
            text,
            evidence,
            merged,
            rationale,
        }
    }
}

/// The JSON/YAML document `reverie dream` prints (a stable contract, see docs/dream.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub agent: String,
    /// `Proposal`, `NothingToPropose` or `NoSessions`.
    pub result: &'static str,
    pub summary: String,
    pub stats: PassStats,
    pub changes: Vec<ChangeView>,
}

impl Report {
    pub fn new(agent: &str, outcome: &PassOutcome, before: &MemoryDocument) -> Self {
        match outcome {
            PassOutcome::NoSessions(stats) => Self {
                agent: agent.to_string(),
                result: "NoSessions",
                summary: format!(
                    "No sessions to review: {} transcript files found, none selected by the lookback.",
                    stats.files_found
                ),
                stats: stats.clone(),
                changes: Vec::new(),
            },
            PassOutcome::NothingToPropose { summary, stats } => Self {
                agent: agent.to_string(),
                result: "NothingToPropose",
                summary: summary.clone(),
                stats: stats.clone(),
                changes: Vec::new(),
            },
            PassOutcome::Proposal(proposal) => Self {
                agent: agent.to_string(),
                result: "Proposal",
                summary: proposal.summary.clone(),
                stats: proposal.stats.clone(),
                changes: proposal
                    .changes
                    .iter()
                    .map(|c| ChangeView::of(c, before, &proposal.result))
                    .collect(),
            },
        }
    }

    /// The review diff: `+` additions, `-` archivals, `~` restructurings, with evidence.
    pub fn to_text(&self, color: bool) -> String {
        let paint = |code: &str, text: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let stats = &self.stats;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            paint(
                "1",
                &format!(
                    "Dream of {}: {} sessions reviewed, {} lines skipped, {} reflector",
                    self.agent, stats.sessions_reviewed, stats.lines_skipped, stats.reflector
                )
            )
        );
        let _ = writeln!(out, "{}\n", self.summary);
        let (mut added, mut archived, mut restructured) = (0, 0, 0);
        for change in &self.changes {
            let (sign, code) = match change.op {
                "Add" => {
                    added += 1;
                    ("+", "32")
                }
                "Archive" => {
                    archived += 1;
                    ("-", "31")
                }
                _ => {
                    restructured += 1;
                    ("~", "33")
                }
            };
            let label = match change.op {
                "Add" => String::new(),
                "Merge" => format!("merge {} into {}: ", change.merged.join(", "), change.id),
                op => format!("{}: ", op.to_lowercase()),
            };
            let _ = writeln!(
                out,
                "{}",
                paint(code, &format!("{sign} [{}] {label}{}", change.section, change.text))
            );
            let example = change
                .evidence
                .sessions
                .first()
                .map(|s| format!(", e.g. {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    evidence: {}{example} · {}",
                change.evidence.line(),
                change.rationale
            );
        }
        if !self.changes.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{added} additions, {archived} archivals, {restructured} restructurings · memory ~{} → ~{} tokens",
            stats.memory_tokens_before, stats.memory_tokens_after
        );
        if !stats.effects.is_empty() {
            let _ = writeln!(out, "effect of the lessons in memory:");
            for lesson in &stats.effects.lessons {
                let _ = writeln!(out, "  {}: {}", lesson.id, lesson.sentence());
            }
        }
        if stats.withheld > 0 {
            let _ = writeln!(
                out,
                "withheld: {} weaker lessons (at most {} changes per pass)",
                stats.withheld,
                self.changes.len()
            );
        }
        for refused in &stats.unsafe_texts {
            let example = refused
                .example
                .as_deref()
                .map(|e| format!(", e.g. {e}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}",
                paint(
                    "31",
                    &format!(
                        "suspected injection, not proposed ({}: {}): \"{}\" in {} sessions{example}",
                        refused.class.as_str(),
                        refused.reason,
                        refused.text,
                        refused.sessions
                    )
                )
            );
        }
        for skipped in &stats.files_skipped {
            let _ = writeln!(out, "skipped {}: {}", skipped.path, skipped.reason);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evidence_line_carries_the_numbers_behind_a_lesson() {
        let evidence = EvidenceView {
            count: 73,
            sessions: vec!["s-1".into()],
            tasks: Some(40),
            numbers: Some("47 of 73 sessions with it succeeded vs 1 of 7 other sessions; p=0.015".into()),
            segment: None,
        };
        assert_eq!(
            evidence.line(),
            "73 sessions, 40 tasks — 47 of 73 sessions with it succeeded vs 1 of 7 other sessions; p=0.015"
        );
        let scoped = EvidenceView {
            count: 4,
            segment: Some("tier=pro".into()),
            ..EvidenceView::default()
        };
        assert_eq!(scoped.line(), "4 sessions, all labelled tier=pro");
    }
}
