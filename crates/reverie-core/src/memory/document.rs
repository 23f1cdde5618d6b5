//! The memory document: sections of entries, an archive, and what protects them.
//!
//! A document is always kept in canonical form ([`MemoryDocument::normalize`]): sections in a
//! fixed order, entries within a section by creation time then id, the archive by archival time
//! then id. Canonical form makes the serialisation, the digest and the rendered `MEMORY.md`
//! depend on content only.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The section holding the agent's instructions. Always protected.
pub const CORE: &str = "core";
/// The sections every document knows, in the order they are rendered.
pub const STANDARD_SECTIONS: [&str; 5] = [CORE, "lessons", "preferences", "workflows", "facts"];
/// How many example session ids an entry keeps as evidence.
pub const MAX_EXAMPLE_SESSIONS: usize = 5;

/// An agent's curated memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryDocument {
    /// Format version of this document.
    #[serde(default = "format_version")]
    pub version: u32,
    /// Sections dreaming may never add to, change or prune (besides `core`, always protected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<String>,
    /// Loaded sections, in canonical order.
    #[serde(default)]
    pub sections: Vec<Section>,
    /// Entries taken out of the loaded memory; kept, never loaded into the agent's context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archive: Vec<ArchivedEntry>,
}

fn format_version() -> u32 {
    1
}

impl Default for MemoryDocument {
    /// An empty memory, in the current format.
    fn default() -> Self {
        Self {
            version: format_version(),
            protected: Vec::new(),
            sections: Vec::new(),
            archive: Vec::new(),
        }
    }
}

/// A named group of entries, rendered as one heading of `MEMORY.md`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Section {
    pub name: String,
    #[serde(default)]
    pub entries: Vec<Entry>,
}

/// One thing the agent remembers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// Stable id (e.g. `lesson-3f2a9c`), unique across sections and the archive.
    pub id: String,
    pub text: String,
    pub kind: EntryKind,
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
    /// Who put the entry in its current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    pub created: Timestamp,
    /// When evidence last confirmed the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinforced: Option<Timestamp>,
    /// Pinned entries are never archived, merged away, moved or rewritten by dreaming.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

/// What kind of knowledge an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    Instruction,
    Lesson,
    Preference,
    Workflow,
    Fact,
}

impl EntryKind {
    /// The section an entry of this kind belongs to by default.
    pub fn default_section(self) -> &'static str {
        match self {
            EntryKind::Instruction => CORE,
            EntryKind::Lesson => "lessons",
            EntryKind::Preference => "preferences",
            EntryKind::Workflow => "workflows",
            EntryKind::Fact => "facts",
        }
    }
}

/// Sessions that back an entry, counted as distinct sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evidence {
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// A few example session ids (at most [`MAX_EXAMPLE_SESSIONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
    /// Distinct tasks (or intents) among the sessions, when sessions carry such labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    /// The counts and tests behind the lesson, as a reviewer reads them (success rates, p,
    /// within-task comparison, how sessions got past an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<String>,
    /// The label segment (`key=value`) all the sessions share, when the lesson holds there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The pattern the sessions were counted under: later sessions are checked for it to
    /// measure whether the entry helped (`dream::effect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
}

/// What a lesson was learned from, in a form any session can be checked against.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Pattern {
    /// A tool failing with this normalised error (volatile values masked).
    ToolError { tool: String, error: String },
    /// A rule or complaint stated in these content words (stemmed, sorted).
    Statement { words: Vec<String> },
    /// These tools called one right after the other.
    Sequence { steps: Vec<String> },
    /// This tool called at all.
    Action { tool: String },
}

impl Pattern {
    /// Whether the lesson wants the pattern to occur less (a mistake, a rule someone had to
    /// state again) rather than more (a workflow, an action that goes with success).
    pub fn unwanted(&self) -> bool {
        matches!(self, Pattern::ToolError { .. } | Pattern::Statement { .. })
    }
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.count == 0
            && self.first_seen.is_none()
            && self.last_seen.is_none()
            && self.sessions.is_empty()
            && self.tasks.is_none()
            && self.numbers.is_none()
            && self.segment.is_none()
            && self.pattern.is_none()
    }
}

/// Which proposal put an entry in its current state, and who approved it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provenance {
    /// The MemoryProposal (or `agent-spec` for the agent's own instructions).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub at: Timestamp,
    /// The memory revision that first held the entry in this state, stamped by the store that
    /// wrote it: sessions run with this revision or a later one ran with the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// When that revision was written: sessions that name no revision are attributed by time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Timestamp>,
}

/// An entry taken out of the loaded memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchivedEntry {
    #[serde(flatten)]
    pub entry: Entry,
    /// The section it was archived from.
    pub section: String,
    pub archived: Timestamp,
    /// Why: stale, compacted, contradicted, or merged into another entry.
    pub reason: String,
}

/// Whether `name` may be a section: a lowercase identifier (`a-z`, digits, `-`).
pub fn is_section_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Canonical rank of a section name: standard sections first in their order, then the rest by
/// name.
fn section_rank(name: &str) -> (usize, &str) {
    let standard = STANDARD_SECTIONS
        .iter()
        .position(|s| *s == name)
        .unwrap_or(STANDARD_SECTIONS.len());
    (standard, name)
}

impl MemoryDocument {
    /// A fresh memory holding only the agent's instructions in `core`.
    pub fn with_instructions(instructions: &str, protected: &[String], now: Timestamp) -> Self {
        let mut doc = Self {
            version: format_version(),
            protected: Vec::new(),
            sections: Vec::new(),
            archive: Vec::new(),
        };
        doc.set_protected(protected);
        doc.set_instructions(instructions, now);
        doc
    }

    /// Replaces the protected-section list (`core` is implicit and never listed).
    pub fn set_protected(&mut self, protected: &[String]) {
        let set: BTreeSet<&str> = protected.iter().map(String::as_str).filter(|s| *s != CORE).collect();
        self.protected = set.into_iter().map(str::to_string).collect();
    }

    /// The instruction entry's id.
    pub const INSTRUCTIONS_ID: &'static str = "core-instructions";

    /// Sets the agent's instructions as the `core` instruction entry (the operator's job when
    /// the Agent spec changes; dreaming can never do it). Returns whether anything changed.
    pub fn set_instructions(&mut self, instructions: &str, now: Timestamp) -> bool {
        let core = self.section_mut(CORE);
        if let Some(entry) = core.entries.iter_mut().find(|e| e.id == Self::INSTRUCTIONS_ID) {
            if entry.text == instructions {
                return false;
            }
            entry.text = instructions.to_string();
            entry.provenance = Some(Provenance {
                source: "agent-spec".into(),
                approved_by: None,
                at: now,
                revision: None,
                applied: None,
            });
            return true;
        }
        core.entries.push(Entry {
            id: Self::INSTRUCTIONS_ID.to_string(),
            text: instructions.to_string(),
            kind: EntryKind::Instruction,
            evidence: Evidence::default(),
            provenance: Some(Provenance {
                source: "agent-spec".into(),
                approved_by: None,
                at: now,
                revision: None,
                applied: None,
            }),
            created: now,
            reinforced: None,
            pinned: true,
        });
        self.normalize();
        true
    }

    /// The agent's instructions, as held in `core`.
    /// Records, on every loaded entry `before` did not hold with the same text (added, rewritten,
    /// restored), that it was adopted in `revision` at `at`. An entry carried over keeps its
    /// adoption, also through a merge that gave it a new provenance.
    pub fn stamp_adoption(&mut self, before: Option<&MemoryDocument>, revision: u64, at: Timestamp) {
        for entry in self.sections.iter_mut().flat_map(|s| s.entries.iter_mut()) {
            let Some(provenance) = entry.provenance.as_mut() else {
                continue;
            };
            match before.and_then(|b| b.find(&entry.id)) {
                Some((_, old)) if old.text == entry.text => {
                    if provenance.revision.is_none()
                        && let Some(kept) = &old.provenance
                    {
                        provenance.revision = kept.revision;
                        provenance.applied = kept.applied;
                    }
                }
                _ => {
                    provenance.revision = Some(revision);
                    provenance.applied = Some(at);
                }
            }
        }
    }

    pub fn instructions(&self) -> Option<&str> {
        self.section(CORE)?
            .entries
            .iter()
            .find(|e| e.id == Self::INSTRUCTIONS_ID)
            .map(|e| e.text.as_str())
    }

    /// Whether a section is protected from dreaming.
    pub fn is_protected(&self, section: &str) -> bool {
        section == CORE || self.protected.iter().any(|p| p == section)
    }

    /// The section named `name`, created (empty, in canonical position) when missing.
    pub fn section_mut(&mut self, name: &str) -> &mut Section {
        let index = match self.sections.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                self.sections.push(Section {
                    name: name.to_string(),
                    entries: Vec::new(),
                });
                self.sections
                    .sort_by(|a, b| section_rank(&a.name).cmp(&section_rank(&b.name)));
                self.sections.iter().position(|s| s.name == name).unwrap_or(0)
            }
        };
        &mut self.sections[index]
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Finds a loaded entry and its section by id.
    pub fn find(&self, id: &str) -> Option<(&Section, &Entry)> {
        self.sections
            .iter()
            .find_map(|s| s.entries.iter().find(|e| e.id == id).map(|e| (s, e)))
    }

    pub fn find_archived(&self, id: &str) -> Option<&ArchivedEntry> {
        self.archive.iter().find(|a| a.entry.id == id)
    }

    /// Every loaded entry with its section name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.sections
            .iter()
            .flat_map(|s| s.entries.iter().map(move |e| (s.name.as_str(), e)))
    }

    /// Number of loaded entries.
    pub fn entry_count(&self) -> usize {
        self.sections.iter().map(|s| s.entries.len()).sum()
    }

    /// Puts the document in canonical form: empty sections dropped, sections ordered, entries
    /// and archive sorted.
    pub fn normalize(&mut self) {
        self.sections.retain(|s| !s.entries.is_empty());
        self.sections
            .sort_by(|a, b| section_rank(&a.name).cmp(&section_rank(&b.name)));
        for section in &mut self.sections {
            section
                .entries
                .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        }
        self.archive
            .sort_by(|a, b| (a.archived, &a.entry.id).cmp(&(b.archived, &b.entry.id)));
    }
}
