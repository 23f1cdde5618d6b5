//! Changes to a memory document, and [`apply`]: the one place where protected sections and
//! pinned entries are enforced, so that no proposal, rebase or rollback can get around them.
//!
//! The only ways to touch `core` or a protected section are the operator's own
//! [`MemoryDocument::set_instructions`] and [`MemoryDocument::set_protected`]; there is no
//! change for it.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::document::{ArchivedEntry, Entry, Evidence, MAX_EXAMPLE_SESSIONS, MemoryDocument, Section, is_section_name};

/// One edit of a memory document, as a dream proposes it and a reviewer approves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
pub enum Change {
    /// New entry in `section` (a live id must not exist; an archived entry with the same id is
    /// un-archived, i.e. removed from the archive).
    Add { section: String, entry: Entry },
    /// Replaces a live entry's state (same id, stays in its section): text, kind, evidence,
    /// provenance, reinforced. `created` and `pinned` must be unchanged.
    Update { entry: Entry },
    /// Moves a live entry to the archive.
    Archive { id: String, at: Timestamp, reason: String },
    /// Rewrites live entry `entry.id` to `entry` and archives each id in `from` with reason
    /// `merged into <id>`.
    Merge {
        entry: Entry,
        from: Vec<String>,
        at: Timestamp,
    },
    /// Moves a live entry to another section.
    Move { id: String, to: String },
    /// New evidence for a live entry: evidence replaced, `reinforced` set to `at`.
    Reinforce {
        id: String,
        evidence: Evidence,
        at: Timestamp,
    },
}

impl Change {
    /// The operation's name as written in a proposal (`Add`, `Update`, …).
    pub fn op_name(&self) -> &'static str {
        match self {
            Change::Add { .. } => "Add",
            Change::Update { .. } => "Update",
            Change::Archive { .. } => "Archive",
            Change::Merge { .. } => "Merge",
            Change::Move { .. } => "Move",
            Change::Reinforce { .. } => "Reinforce",
        }
    }

    /// The entry the change is about (the surviving entry of a Merge).
    pub fn id(&self) -> &str {
        match self {
            Change::Add { entry, .. } | Change::Update { entry } | Change::Merge { entry, .. } => &entry.id,
            Change::Archive { id, .. } | Change::Move { id, .. } | Change::Reinforce { id, .. } => id,
        }
    }

    /// Every id the change reads or writes: [`Change::id`], then a Merge's `from` ids.
    pub fn touched_ids(&self) -> impl Iterator<Item = &str> {
        let merged: &[String] = match self {
            Change::Merge { from, .. } => from,
            _ => &[],
        };
        std::iter::once(self.id()).chain(merged.iter().map(String::as_str))
    }
}

/// The reason recorded on an entry archived by a Merge into `id`.
pub fn merged_into(id: &str) -> String {
    format!("merged into {id}")
}

/// Why a list of changes cannot be applied. Every variant names the failing change by its
/// 0-based position in the list (`changes[index]`), its operation, and the entry id the rule
/// failed on (for a Merge, possibly one of the merged-away ids).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "changes[{index}] ({op} {id}): section {section} is protected, so dreaming may not add to, change or prune it; drop this change{}",
        protected_hint(section)
    )]
    Protected {
        index: usize,
        op: &'static str,
        id: String,
        section: String,
    },
    #[error(
        "changes[{index}] ({op} {id}): entry {id} is pinned, so dreaming may reinforce it but never rewrite, move, archive or merge it; drop this change or unpin the entry first"
    )]
    Pinned { index: usize, op: &'static str, id: String },
    #[error("changes[{index}] ({op} {id}): no loaded entry has id {id}{}", archived_hint(*.archived))]
    UnknownEntry {
        index: usize,
        op: &'static str,
        id: String,
        archived: bool,
    },
    #[error(
        "changes[{index}] ({op} {id}): an entry with id {id} already exists in section {section}; use Update to change it, or give the new entry another id"
    )]
    DuplicateId {
        index: usize,
        op: &'static str,
        id: String,
        section: String,
    },
    #[error(
        "changes[{index}] ({op} {id}): {section:?} is not a section name; use lowercase letters, digits and '-', starting with a letter, at most 63 characters"
    )]
    InvalidSection {
        index: usize,
        op: &'static str,
        id: String,
        section: String,
    },
    #[error("changes[{index}] ({op} {id}): {reason}")]
    InvalidChange {
        index: usize,
        op: &'static str,
        id: String,
        reason: String,
    },
}

fn protected_hint(section: &str) -> String {
    if section == super::document::CORE {
        " (core holds the Agent's spec.instructions, which only the operator writes)".to_string()
    } else {
        format!(", or remove {section} from the Agent's spec.memory.protectedSections")
    }
}

fn archived_hint(archived: bool) -> &'static str {
    if archived {
        " (it is archived; Add it again to restore it)"
    } else {
        ""
    }
}

impl ApplyError {
    /// Position of the failing change in the list.
    pub fn index(&self) -> usize {
        match self {
            ApplyError::Protected { index, .. }
            | ApplyError::Pinned { index, .. }
            | ApplyError::UnknownEntry { index, .. }
            | ApplyError::DuplicateId { index, .. }
            | ApplyError::InvalidSection { index, .. }
            | ApplyError::InvalidChange { index, .. } => *index,
        }
    }

    /// The entry id the rule failed on.
    pub fn id(&self) -> &str {
        match self {
            ApplyError::Protected { id, .. }
            | ApplyError::Pinned { id, .. }
            | ApplyError::UnknownEntry { id, .. }
            | ApplyError::DuplicateId { id, .. }
            | ApplyError::InvalidSection { id, .. }
            | ApplyError::InvalidChange { id, .. } => id,
        }
    }
}

/// Applies `changes` in order, all or nothing, and returns the new document in canonical form.
///
/// Rules, checked per change in this order (the first one broken is reported):
/// - an id must be live where the change needs it ([`ApplyError::UnknownEntry`]) and new where
///   it adds it ([`ApplyError::DuplicateId`]); section names must be valid
///   ([`ApplyError::InvalidSection`]);
/// - nothing may be added to, moved into, changed in, or taken out of a protected section,
///   `core` included ([`ApplyError::Protected`]);
/// - a pinned entry may only be reinforced ([`ApplyError::Pinned`]); new entries are never
///   pinned (pinning is a reviewer's decision, not a dream's);
/// - an Update or Merge keeps the entry's `created` and `pinned`; a Merge names at least one
///   other entry, each once; a Move changes the section ([`ApplyError::InvalidChange`]).
///
/// Evidence in a change that lists more than [`MAX_EXAMPLE_SESSIONS`] example sessions is
/// truncated to the first ones rather than rejected: the list is a sample (the count is kept),
/// and refusing a whole approved proposal over a long sample would help nobody.
pub fn apply(doc: &MemoryDocument, changes: &[Change]) -> Result<MemoryDocument, ApplyError> {
    let mut work = Workspace::load(doc);
    for (index, change) in changes.iter().enumerate() {
        let at = At {
            index,
            op: change.op_name(),
        };
        work.apply(at, change)?;
    }
    Ok(work.into_document())
}

/// Drops the oldest archived entries (by archival time, then id) so that at most `limit` are
/// kept. Returns how many were dropped. This is the only way archived entries ever go away:
/// the operator calls it with the schedule's `archiveLimit`; no change can delete.
pub fn prune_archive(doc: &mut MemoryDocument, limit: usize) -> usize {
    let excess = doc.archive.len().saturating_sub(limit);
    if excess > 0 {
        doc.archive
            .sort_by(|a, b| (a.archived, &a.entry.id).cmp(&(b.archived, &b.entry.id)));
        doc.archive.drain(..excess);
    }
    excess
}

/// Where a rule failed: which change, which operation. Builds the errors.
#[derive(Clone, Copy)]
struct At {
    index: usize,
    op: &'static str,
}

impl At {
    fn protected(self, id: &str, section: &str) -> ApplyError {
        ApplyError::Protected {
            index: self.index,
            op: self.op,
            id: id.to_string(),
            section: section.to_string(),
        }
    }

    fn pinned(self, id: &str) -> ApplyError {
        ApplyError::Pinned {
            index: self.index,
            op: self.op,
            id: id.to_string(),
        }
    }

    fn unknown(self, id: &str, archived: bool) -> ApplyError {
        ApplyError::UnknownEntry {
            index: self.index,
            op: self.op,
            id: id.to_string(),
            archived,
        }
    }

    fn duplicate(self, id: &str, section: &str) -> ApplyError {
        ApplyError::DuplicateId {
            index: self.index,
            op: self.op,
            id: id.to_string(),
            section: section.to_string(),
        }
    }

    fn invalid_section(self, id: &str, section: &str) -> ApplyError {
        ApplyError::InvalidSection {
            index: self.index,
            op: self.op,
            id: id.to_string(),
            section: section.to_string(),
        }
    }

    fn invalid(self, id: &str, reason: impl Into<String>) -> ApplyError {
        ApplyError::InvalidChange {
            index: self.index,
            op: self.op,
            id: id.to_string(),
            reason: reason.into(),
        }
    }
}

/// One entry of the document being edited, live or archived. An entry keeps its slot (and its
/// index in [`Workspace::by_id`]) through every change, so no change ever scans the document.
struct Slot {
    /// Index into [`Workspace::section_names`]: where it lives, or was archived from.
    section: usize,
    entry: Entry,
    /// `Some((archived, reason))` when the entry is in the archive.
    archived: Option<(Timestamp, String)>,
}

/// The document unpacked for editing: every entry cloned once into a slot, indexed by id.
/// Section names and ids are borrowed from the input document and the changes.
struct Workspace<'a> {
    doc: &'a MemoryDocument,
    section_names: Vec<&'a str>,
    section_index: HashMap<&'a str, usize>,
    slots: Vec<Slot>,
    by_id: HashMap<&'a str, usize>,
}

impl<'a> Workspace<'a> {
    fn load(doc: &'a MemoryDocument) -> Self {
        let capacity = doc.entry_count() + doc.archive.len();
        let mut work = Workspace {
            doc,
            section_names: Vec::new(),
            section_index: HashMap::new(),
            slots: Vec::with_capacity(capacity),
            by_id: HashMap::with_capacity(capacity),
        };
        for section in &doc.sections {
            let index = work.intern(&section.name);
            for entry in &section.entries {
                work.insert(&entry.id, index, entry.clone(), None);
            }
        }
        for archived in &doc.archive {
            let index = work.intern(&archived.section);
            let state = Some((archived.archived, archived.reason.clone()));
            work.insert(&archived.entry.id, index, archived.entry.clone(), state);
        }
        work
    }

    fn intern(&mut self, name: &'a str) -> usize {
        *self.section_index.entry(name).or_insert_with(|| {
            self.section_names.push(name);
            self.section_names.len() - 1
        })
    }

    /// Adds a slot for an entry; `id` (the entry's id) is borrowed from the input.
    fn insert(&mut self, id: &'a str, section: usize, entry: Entry, archived: Option<(Timestamp, String)>) {
        self.by_id.insert(id, self.slots.len());
        self.slots.push(Slot {
            section,
            entry,
            archived,
        });
    }

    fn apply(&mut self, at: At, change: &'a Change) -> Result<(), ApplyError> {
        match change {
            Change::Add { section, entry } => self.add(at, section, entry),
            Change::Update { entry } => self.update(at, entry),
            Change::Archive { id, at: when, reason } => self.archive(at, id, *when, reason.clone()),
            Change::Merge { entry, from, at: when } => self.merge(at, entry, from, *when),
            Change::Move { id, to } => self.move_to(at, id, to),
            Change::Reinforce { id, evidence, at: when } => self.reinforce(at, id, evidence, *when),
        }
    }

    /// The slot of live entry `id`.
    fn live(&self, at: At, id: &str) -> Result<usize, ApplyError> {
        match self.by_id.get(id) {
            Some(&slot) if self.slots[slot].archived.is_none() => Ok(slot),
            Some(_) => Err(at.unknown(id, true)),
            None => Err(at.unknown(id, false)),
        }
    }

    /// The slot of a live entry a change may touch at all: one outside protected sections.
    fn editable(&self, at: At, id: &str) -> Result<usize, ApplyError> {
        let slot = self.live(at, id)?;
        let section = self.section_names[self.slots[slot].section];
        if self.doc.is_protected(section) {
            return Err(at.protected(id, section));
        }
        Ok(slot)
    }

    /// The slot of an editable entry that is not pinned: one that may be rewritten, moved,
    /// archived or merged.
    fn unpinned(&self, at: At, id: &str) -> Result<usize, ApplyError> {
        let slot = self.editable(at, id)?;
        if self.slots[slot].entry.pinned {
            return Err(at.pinned(id));
        }
        Ok(slot)
    }

    /// The index of section `name`, which entry `id` is about to enter.
    fn enterable_section(&mut self, at: At, id: &str, name: &'a str) -> Result<usize, ApplyError> {
        if !is_section_name(name) {
            return Err(at.invalid_section(id, name));
        }
        if self.doc.is_protected(name) {
            return Err(at.protected(id, name));
        }
        Ok(self.intern(name))
    }

    fn add(&mut self, at: At, section: &'a str, entry: &'a Entry) -> Result<(), ApplyError> {
        let id = entry.id.as_str();
        if id.is_empty() {
            return Err(at.invalid(id, "an entry id cannot be empty"));
        }
        let section = self.enterable_section(at, id, section)?;
        if entry.pinned {
            return Err(at.invalid(id, "a new entry cannot be pinned; pinning is a reviewer's decision"));
        }
        let fresh = Slot {
            section,
            entry: with_capped_evidence(entry.clone()),
            archived: None,
        };
        match self.by_id.get(id).copied() {
            None => {
                self.by_id.insert(id, self.slots.len());
                self.slots.push(fresh);
            }
            Some(slot) => {
                let existing = &self.slots[slot];
                if existing.archived.is_none() {
                    return Err(at.duplicate(id, self.section_names[existing.section]));
                }
                if existing.entry.pinned {
                    return Err(at.pinned(id));
                }
                self.slots[slot] = fresh;
            }
        }
        Ok(())
    }

    fn update(&mut self, at: At, entry: &Entry) -> Result<(), ApplyError> {
        let slot = self.unpinned(at, &entry.id)?;
        keeps_identity(at, &self.slots[slot].entry, entry)?;
        self.slots[slot].entry = with_capped_evidence(entry.clone());
        Ok(())
    }

    fn archive(&mut self, at: At, id: &str, when: Timestamp, reason: String) -> Result<(), ApplyError> {
        let slot = self.unpinned(at, id)?;
        self.slots[slot].archived = Some((when, reason));
        Ok(())
    }

    fn merge(&mut self, at: At, entry: &Entry, from: &[String], when: Timestamp) -> Result<(), ApplyError> {
        let id = entry.id.as_str();
        merge_list_is_valid(at, id, from)?;
        let target = self.unpinned(at, id)?;
        keeps_identity(at, &self.slots[target].entry, entry)?;
        let merged = from
            .iter()
            .map(|merged| self.unpinned(at, merged))
            .collect::<Result<Vec<_>, _>>()?;
        self.slots[target].entry = with_capped_evidence(entry.clone());
        let reason = merged_into(id);
        for slot in merged {
            self.slots[slot].archived = Some((when, reason.clone()));
        }
        Ok(())
    }

    fn move_to(&mut self, at: At, id: &str, to: &'a str) -> Result<(), ApplyError> {
        let slot = self.unpinned(at, id)?;
        let section = self.enterable_section(at, id, to)?;
        if section == self.slots[slot].section {
            return Err(at.invalid(id, format!("the entry is already in section {to}")));
        }
        self.slots[slot].section = section;
        Ok(())
    }

    fn reinforce(&mut self, at: At, id: &str, evidence: &Evidence, when: Timestamp) -> Result<(), ApplyError> {
        let slot = self.editable(at, id)?;
        let entry = &mut self.slots[slot].entry;
        // Evidence that names no pattern (a hand-written proposal) keeps the one it had.
        let pattern = evidence.pattern.clone().or_else(|| entry.evidence.pattern.take());
        entry.evidence = capped(evidence.clone());
        entry.evidence.pattern = pattern;
        entry.reinforced = Some(when);
        Ok(())
    }

    fn into_document(self) -> MemoryDocument {
        let mut live: Vec<Vec<Entry>> = vec![Vec::new(); self.section_names.len()];
        let mut archive = Vec::new();
        for slot in self.slots {
            match slot.archived {
                None => live[slot.section].push(slot.entry),
                Some((archived, reason)) => archive.push(ArchivedEntry {
                    entry: slot.entry,
                    section: self.section_names[slot.section].to_string(),
                    archived,
                    reason,
                }),
            }
        }
        let sections = self
            .section_names
            .iter()
            .zip(live)
            .map(|(name, entries)| Section {
                name: name.to_string(),
                entries,
            })
            .collect();
        let mut doc = MemoryDocument {
            version: self.doc.version,
            protected: self.doc.protected.clone(),
            sections,
            archive,
        };
        doc.normalize();
        doc
    }
}

/// An Update or Merge rewrites an entry's content, never its identity: when it was created and
/// whether a reviewer pinned it.
fn keeps_identity(at: At, current: &Entry, new: &Entry) -> Result<(), ApplyError> {
    if new.created != current.created {
        let reason = format!(
            "created must stay {} (the change says {})",
            current.created, new.created
        );
        return Err(at.invalid(&new.id, reason));
    }
    if new.pinned != current.pinned {
        return Err(at.invalid(
            &new.id,
            "a change cannot pin an entry; pinning is a reviewer's decision",
        ));
    }
    Ok(())
}

/// A Merge folds at least one other entry, each named once, into its target.
fn merge_list_is_valid(at: At, id: &str, from: &[String]) -> Result<(), ApplyError> {
    if from.is_empty() {
        return Err(at.invalid(id, "a Merge must name the entries it merges (from is empty)"));
    }
    let mut seen = HashSet::with_capacity(from.len());
    for merged in from {
        if merged == id {
            return Err(at.invalid(id, "an entry cannot be merged into itself (from lists the target)"));
        }
        if !seen.insert(merged) {
            return Err(at.invalid(id, format!("from lists {merged} twice")));
        }
    }
    Ok(())
}

fn capped(mut evidence: Evidence) -> Evidence {
    evidence.sessions.truncate(MAX_EXAMPLE_SESSIONS);
    evidence
}

fn with_capped_evidence(mut entry: Entry) -> Entry {
    entry.evidence = capped(entry.evidence);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::proptests::fixtures::{entry, sample, ts};

    fn error_of(changes: &[Change]) -> ApplyError {
        apply(&sample(), changes).expect_err("the changes must be refused")
    }

    fn archive(id: &str) -> Change {
        Change::Archive {
            id: id.into(),
            at: ts(100),
            reason: "stale".into(),
        }
    }

    fn updated(id: &str, text: &str) -> Entry {
        let doc = sample();
        let mut entry = doc.find(id).expect("fixture entry").1.clone();
        entry.text = text.into();
        entry
    }

    #[test]
    fn add_creates_an_entry_and_restores_an_archived_id() {
        let fresh = entry("lesson-9", "Retry with the billing id.", 50);
        let restored = entry("lesson-old", "Back in use.", 60);
        let changes = [
            Change::Add {
                section: "team-notes".into(),
                entry: fresh.clone(),
            },
            Change::Add {
                section: "lessons".into(),
                entry: restored.clone(),
            },
        ];
        let doc = apply(&sample(), &changes).unwrap();
        assert_eq!(
            doc.find("lesson-9").map(|(s, e)| (s.name.as_str(), e)),
            Some(("team-notes", &fresh))
        );
        assert_eq!(doc.find("lesson-old").map(|(_, e)| e), Some(&restored));
        assert!(doc.find_archived("lesson-old").is_none());
        assert_eq!(
            doc.sections.last().map(|s| s.name.as_str()),
            Some("team-notes"),
            "custom sections go last"
        );
    }

    #[test]
    fn update_reinforce_move_archive_and_merge_edit_live_entries() {
        let merged = updated("lesson-1", "Look accounts up by billing id; emails are ambiguous.");
        let evidence = Evidence {
            count: 7,
            sessions: (0..8).map(|i| format!("s-{i}")).collect(),
            ..Evidence::default()
        };
        let changes = [
            Change::Update {
                entry: updated("pref-1", "Reply in under five sentences."),
            },
            Change::Reinforce {
                id: "lesson-2".into(),
                evidence: evidence.clone(),
                at: ts(90),
            },
            Change::Move {
                id: "fact-1".into(),
                to: "lessons".into(),
            },
            Change::Merge {
                entry: merged.clone(),
                from: vec!["fact-1".into()],
                at: ts(95),
            },
            archive("pref-1"),
        ];
        let doc = apply(&sample(), &changes).unwrap();
        assert_eq!(doc.find("lesson-1").map(|(_, e)| e), Some(&merged));
        let reinforced = doc.find("lesson-2").unwrap().1;
        assert_eq!(reinforced.reinforced, Some(ts(90)));
        assert_eq!(
            reinforced.evidence.sessions.len(),
            MAX_EXAMPLE_SESSIONS,
            "sessions are truncated"
        );
        assert_eq!(reinforced.evidence.count, 7, "the count is kept");
        let fact = doc.find_archived("fact-1").unwrap();
        assert_eq!(
            (fact.section.as_str(), fact.reason.as_str(), fact.archived),
            ("lessons", "merged into lesson-1", ts(95))
        );
        let pref = doc.find_archived("pref-1").unwrap();
        assert_eq!(
            (pref.entry.text.as_str(), pref.reason.as_str()),
            ("Reply in under five sentences.", "stale")
        );
        assert!(doc.section("preferences").is_none(), "emptied sections are dropped");
        let mut canonical = doc.clone();
        canonical.normalize();
        assert_eq!(doc, canonical);
    }

    #[test]
    fn changes_to_protected_sections_are_refused() {
        let err = error_of(&[archive("pref-1"), archive("core-instructions")]);
        assert_eq!(
            err.to_string(),
            "changes[1] (Archive core-instructions): section core is protected, so dreaming may not add to, change or prune it; drop this change (core holds the Agent's spec.instructions, which only the operator writes)"
        );
        let add = Change::Add {
            section: "safety".into(),
            entry: entry("safety-2", "x", 1),
        };
        let into = Change::Move {
            id: "lesson-1".into(),
            to: "safety".into(),
        };
        let merge_from = Change::Merge {
            entry: updated("lesson-1", "x"),
            from: vec!["safety-1".into()],
            at: ts(1),
        };
        let reinforce = Change::Reinforce {
            id: "safety-1".into(),
            evidence: Evidence::default(),
            at: ts(1),
        };
        for (change, id) in [
            (add, "safety-2"),
            (into, "lesson-1"),
            (merge_from, "safety-1"),
            (reinforce, "safety-1"),
        ] {
            let expected = ApplyError::Protected {
                index: 0,
                op: change.op_name(),
                id: id.into(),
                section: "safety".into(),
            };
            assert_eq!(error_of(&[change]), expected);
        }
    }

    #[test]
    fn pinned_entries_may_only_be_reinforced() {
        let err = error_of(&[archive("lesson-2")]);
        assert_eq!(
            err.to_string(),
            "changes[0] (Archive lesson-2): entry lesson-2 is pinned, so dreaming may reinforce it but never rewrite, move, archive or merge it; drop this change or unpin the entry first"
        );
        let refused = [
            Change::Update {
                entry: updated("lesson-2", "x"),
            },
            Change::Move {
                id: "lesson-2".into(),
                to: "facts".into(),
            },
            Change::Merge {
                entry: updated("lesson-1", "x"),
                from: vec!["lesson-2".into()],
                at: ts(1),
            },
            Change::Merge {
                entry: updated("lesson-2", "x"),
                from: vec!["lesson-1".into()],
                at: ts(1),
            },
        ];
        for change in refused {
            assert!(matches!(error_of(&[change]), ApplyError::Pinned { ref id, .. } if id == "lesson-2"));
        }
    }

    #[test]
    fn unknown_and_archived_ids_are_named() {
        let missing = Change::Move {
            id: "nope".into(),
            to: "facts".into(),
        };
        assert_eq!(
            error_of(&[missing]).to_string(),
            "changes[0] (Move nope): no loaded entry has id nope"
        );
        assert_eq!(
            error_of(&[archive("lesson-old")]).to_string(),
            "changes[0] (Archive lesson-old): no loaded entry has id lesson-old (it is archived; Add it again to restore it)"
        );
    }

    #[test]
    fn adding_an_existing_id_is_refused() {
        let add = Change::Add {
            section: "facts".into(),
            entry: entry("lesson-1", "x", 1),
        };
        assert_eq!(
            error_of(&[add]).to_string(),
            "changes[0] (Add lesson-1): an entry with id lesson-1 already exists in section lessons; use Update to change it, or give the new entry another id"
        );
    }

    #[test]
    fn section_names_are_checked() {
        let add = Change::Add {
            section: "Team Notes".into(),
            entry: entry("note-1", "x", 1),
        };
        assert_eq!(
            error_of(&[add]).to_string(),
            "changes[0] (Add note-1): \"Team Notes\" is not a section name; use lowercase letters, digits and '-', starting with a letter, at most 63 characters"
        );
        let moved = Change::Move {
            id: "lesson-1".into(),
            to: String::new(),
        };
        assert!(matches!(error_of(&[moved]), ApplyError::InvalidSection { .. }));
    }

    #[test]
    fn malformed_changes_say_what_is_wrong() {
        let mut recreated = updated("lesson-1", "x");
        recreated.created = ts(999);
        let mut pinning = updated("lesson-1", "x");
        pinning.pinned = true;
        let mut new_pinned = entry("note-1", "x", 1);
        new_pinned.pinned = true;
        let merge = |from: &[&str]| Change::Merge {
            entry: updated("lesson-1", "x"),
            from: from.iter().map(|s| s.to_string()).collect(),
            at: ts(1),
        };
        let cases = [
            (Change::Update { entry: recreated }, "created must stay"),
            (Change::Update { entry: pinning }, "a change cannot pin an entry"),
            (merge(&[]), "from is empty"),
            (merge(&["lesson-1"]), "cannot be merged into itself"),
            (merge(&["fact-1", "fact-1"]), "from lists fact-1 twice"),
            (
                Change::Move {
                    id: "lesson-1".into(),
                    to: "lessons".into(),
                },
                "already in section lessons",
            ),
            (
                Change::Add {
                    section: "facts".into(),
                    entry: new_pinned,
                },
                "a new entry cannot be pinned",
            ),
            (
                Change::Add {
                    section: "facts".into(),
                    entry: entry("", "x", 1),
                },
                "an entry id cannot be empty",
            ),
        ];
        for (change, expected) in cases {
            let err = error_of(&[change]);
            assert!(matches!(err, ApplyError::InvalidChange { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{err} should say {expected:?}");
        }
    }

    #[test]
    fn errors_report_the_failing_change_and_nothing_is_applied() {
        let doc = sample();
        let err = apply(&doc, &[archive("pref-1"), archive("pref-1")]).unwrap_err();
        assert_eq!((err.index(), err.id()), (1, "pref-1"));
        assert_eq!(doc, sample(), "the input is never touched");
        assert_eq!(apply(&doc, &[]).unwrap(), doc, "no changes, same document");
    }

    #[test]
    fn prune_archive_drops_the_oldest_beyond_the_limit() {
        let mut doc = sample();
        let changes = [
            archive("pref-1"),
            Change::Archive {
                id: "fact-1".into(),
                at: ts(200),
                reason: "stale".into(),
            },
        ];
        doc = apply(&doc, &changes).unwrap();
        assert_eq!(prune_archive(&mut doc, 5), 0);
        assert_eq!(prune_archive(&mut doc, 1), 2);
        let kept: Vec<&str> = doc.archive.iter().map(|a| a.entry.id.as_str()).collect();
        assert_eq!(kept, ["fact-1"]);
    }

    #[test]
    fn changes_serialise_with_their_op() {
        let change = Change::Move {
            id: "lesson-1".into(),
            to: "facts".into(),
        };
        let json = serde_json::to_string(&change).unwrap();
        assert_eq!(json, r#"{"op":"Move","id":"lesson-1","to":"facts"}"#);
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), change);
        let typo = r#"{"op":"Move","id":"lesson-1","to":"facts","section":"x"}"#;
        assert!(
            serde_json::from_str::<Change>(typo).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn touched_ids_list_the_target_then_the_merged_entries() {
        let merge = Change::Merge {
            entry: updated("lesson-1", "x"),
            from: vec!["fact-1".into(), "pref-1".into()],
            at: ts(1),
        };
        assert_eq!(
            merge.touched_ids().collect::<Vec<_>>(),
            ["lesson-1", "fact-1", "pref-1"]
        );
        assert_eq!(merge.op_name(), "Merge");
        assert_eq!(archive("x").touched_ids().collect::<Vec<_>>(), ["x"]);
    }
}
