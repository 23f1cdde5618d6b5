//! `MEMORY.md`: what the agent reads at the start of every session — the loaded sections only,
//! in canonical order, readable by a person too.

use std::fmt::Write;

use super::document::{CORE, EntryKind, MemoryDocument};

fn heading(section: &str) -> String {
    let mut chars = section.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
        .replace('-', " ")
}

/// Renders the loaded memory. The archive is never rendered.
pub fn render_markdown(agent: &str, doc: &MemoryDocument) -> String {
    let mut out = String::with_capacity(64 + doc.entries().map(|(_, e)| e.text.len() + 32).sum::<usize>());
    let _ = writeln!(out, "# Memory of {agent}");
    for section in &doc.sections {
        if section.entries.is_empty() {
            continue;
        }
        let _ = write!(out, "\n## {}\n\n", heading(&section.name));
        for entry in &section.entries {
            if section.name == CORE && entry.kind == EntryKind::Instruction {
                let _ = writeln!(out, "{}", entry.text.trim_end());
                continue;
            }
            let _ = write!(out, "- {}", entry.text.trim_end().replace('\n', "\n  "));
            if entry.evidence.count > 0 {
                let _ = write!(out, " _(seen in {} sessions)_", entry.evidence.count);
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::document::{Entry, Evidence};

    #[test]
    fn renders_instructions_then_entries_with_evidence_and_no_archive() {
        let now: jiff::Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let mut doc = MemoryDocument::with_instructions("Help customers with billing.", &[], now);
        doc.section_mut("lessons").entries.push(Entry {
            id: "lesson-1".into(),
            text: "Look accounts up by billing id, not email.".into(),
            kind: EntryKind::Lesson,
            evidence: Evidence {
                count: 4,
                ..Default::default()
            },
            provenance: None,
            created: now,
            reinforced: None,
            pinned: false,
        });
        let md = render_markdown("support", &doc);
        assert_eq!(
            md,
            "# Memory of support\n\n## Core\n\nHelp customers with billing.\n\n## Lessons\n\n- Look accounts up by billing id, not email. _(seen in 4 sessions)_\n"
        );
    }
}
