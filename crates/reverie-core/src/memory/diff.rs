//! The changes that turn one document into another: what a reviewer reads, what a rollback
//! proposes, and what a hand-edited memory amounts to.

use std::collections::{HashMap, HashSet};

use super::change::Change;
use super::document::{ArchivedEntry, Entry, MAX_EXAMPLE_SESSIONS, MemoryDocument, is_section_name};

/// Where an entry is in a document: loaded in a section, or in the archive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum EntryState<'a> {
    Live { section: &'a str, entry: &'a Entry },
    Archived(&'a ArchivedEntry),
}

impl<'a> EntryState<'a> {
    /// The section and content the entry has (or had when it was archived).
    fn live_form(self) -> (&'a str, &'a Entry) {
        match self {
            EntryState::Live { section, entry } => (section, entry),
            EntryState::Archived(archived) => (&archived.section, &archived.entry),
        }
    }
}

/// Every entry of a document with its state: loaded sections in canonical order, then the
/// archive.
pub(crate) fn entry_states(doc: &MemoryDocument) -> impl Iterator<Item = (&str, EntryState<'_>)> {
    let live = doc
        .entries()
        .map(|(section, entry)| (entry.id.as_str(), EntryState::Live { section, entry }));
    let archived = doc
        .archive
        .iter()
        .map(|a| (a.entry.id.as_str(), EntryState::Archived(a)));
    live.chain(archived)
}

/// Why the difference between two documents is not something changes can express. The operator
/// makes such differences itself (instructions, protected sections, pins, archive pruning).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("the format version differs ({from} → {to}); only the operator migrates a memory")]
    Version { from: u32, to: u32 },
    #[error("the protected-section list differs; only the operator changes it, from spec.memory.protectedSections")]
    ProtectedList,
    #[error("entry {id} differs inside protected section {section}; only the operator changes protected sections")]
    Protected { id: String, section: String },
    #[error(
        "entry {id} is or becomes pinned and differs in more than its evidence; only a reviewer pins, unpins or edits a pinned entry"
    )]
    Pinned { id: String },
    #[error("entry {id} is gone; changes never delete entries (they archive them), only archive pruning does")]
    Deleted { id: String },
    #[error("entry {id}: {reason}")]
    Unexpressible { id: String, reason: String },
}

/// The changes that turn `a` into `b`: for documents in canonical form (as
/// [`super::from_yaml`] and [`super::apply`] return them) that differ only in what changes can
/// express, `apply(a, &diff(a, b)?) == Ok(b)` exactly.
///
/// The list is ordered by kind so that it always applies (no rule of `apply` links two entries,
/// so only each entry's own steps need ordering):
/// Archives of replaced entries, then Adds (new entries, restored archived ones), then Moves,
/// then Updates and Reinforces, then Archives — each group in `b`'s canonical order.
///
/// An entry whose evidence and `reinforced` time are all that changed gets a Reinforce (allowed
/// even when pinned), any other edit an Update. Archivals are always Archive changes carrying
/// `b`'s time and reason (a `merged into X` reason is kept as is; no Merge is produced). Whatever
/// an Update cannot say is said with an archive and a re-add: a live entry whose creation time
/// differs is replaced (Archive, then Add), and an archived entry whose record differs is
/// restored and archived again (Add, then Archive).
pub fn diff(a: &MemoryDocument, b: &MemoryDocument) -> Result<Vec<Change>, DiffError> {
    if a.version != b.version {
        return Err(DiffError::Version {
            from: a.version,
            to: b.version,
        });
    }
    if a.protected != b.protected {
        return Err(DiffError::ProtectedList);
    }
    let mut before: HashMap<&str, EntryState> = HashMap::with_capacity(a.entry_count() + a.archive.len());
    before.extend(entry_states(a));
    let mut plan = Plan::new(a);
    let mut kept = 0;
    for (id, after) in entry_states(b) {
        let prior = before.get(id).copied();
        kept += usize::from(prior.is_some());
        if prior != Some(after) {
            plan.entry(id, prior, after)?;
        }
    }
    if kept < before.len() {
        return Err(first_deleted(a, b));
    }
    Ok(plan.into_changes())
}

/// The first entry of `a` (in canonical order) that `b` lacks entirely.
fn first_deleted(a: &MemoryDocument, b: &MemoryDocument) -> DiffError {
    let remaining: HashSet<&str> = entry_states(b).map(|(id, _)| id).collect();
    let id = entry_states(a)
        .map(|(id, _)| id)
        .find(|id| !remaining.contains(id))
        .unwrap_or_default();
    DiffError::Deleted { id: id.to_string() }
}

/// The changes found so far, grouped by the order in which they must apply.
struct Plan<'a> {
    doc: &'a MemoryDocument,
    retirements: Vec<Change>,
    adds: Vec<Change>,
    moves: Vec<Change>,
    edits: Vec<Change>,
    archives: Vec<Change>,
}

impl<'a> Plan<'a> {
    fn new(doc: &'a MemoryDocument) -> Self {
        Plan {
            doc,
            retirements: Vec::new(),
            adds: Vec::new(),
            moves: Vec::new(),
            edits: Vec::new(),
            archives: Vec::new(),
        }
    }

    fn into_changes(self) -> Vec<Change> {
        let mut changes = self.retirements;
        changes.extend(self.adds);
        changes.extend(self.moves);
        changes.extend(self.edits);
        changes.extend(self.archives);
        changes
    }

    /// Plans how entry `id` goes from `prior` to `after` (which differ): first to the live
    /// form of `after`, then, if `after` is archived, to the archive.
    fn entry(&mut self, id: &str, prior: Option<EntryState>, after: EntryState) -> Result<(), DiffError> {
        let (section, entry) = after.live_form();
        let archiving = matches!(after, EntryState::Archived(_));
        match prior {
            Some(EntryState::Live {
                section: was_in,
                entry: was,
            }) => self.rewrite(id, was_in, was, section, entry, archiving)?,
            Some(EntryState::Archived(old)) if old.entry.pinned => return Err(pinned(id)),
            Some(EntryState::Archived(_)) | None => self.add(id, section, entry)?,
        }
        if let EntryState::Archived(archived) = after {
            self.archives.push(Change::Archive {
                id: id.to_string(),
                at: archived.archived,
                reason: archived.reason.clone(),
            });
        }
        Ok(())
    }

    fn add(&mut self, id: &str, section: &str, entry: &Entry) -> Result<(), DiffError> {
        if id.is_empty() {
            return Err(unexpressible(id, "an entry id cannot be empty"));
        }
        self.check_enterable(id, section)?;
        if entry.pinned {
            return Err(pinned(id));
        }
        check_sessions(id, entry)?;
        self.adds.push(Change::Add {
            section: section.to_string(),
            entry: entry.clone(),
        });
        Ok(())
    }

    /// A live entry changes section, content, or goes to the archive (`archiving`).
    fn rewrite(
        &mut self,
        id: &str,
        was_in: &str,
        was: &Entry,
        section: &str,
        entry: &Entry,
        archiving: bool,
    ) -> Result<(), DiffError> {
        if self.doc.is_protected(was_in) {
            return Err(DiffError::Protected {
                id: id.to_string(),
                section: was_in.to_string(),
            });
        }
        if was.created != entry.created && !was.pinned {
            return self.replace(id, section, entry);
        }
        let reinforced_only = was == entry || is_reinforcement(was, entry);
        if was.pinned && (archiving || was_in != section || !reinforced_only) {
            return Err(pinned(id));
        }
        if was_in != section {
            self.check_enterable(id, section)?;
            self.moves.push(Change::Move {
                id: id.to_string(),
                to: section.to_string(),
            });
        }
        if was != entry {
            check_sessions(id, entry)?;
            self.edits.push(edit(was, entry)?);
        }
        Ok(())
    }

    /// A live entry replaced by a new one under the same id (its creation time differs): the
    /// old one is archived, then the new one added, which takes the id back from the archive.
    fn replace(&mut self, id: &str, section: &str, entry: &Entry) -> Result<(), DiffError> {
        self.retirements.push(Change::Archive {
            id: id.to_string(),
            at: entry.created,
            reason: format!("replaced by a new entry {id}"),
        });
        self.add(id, section, entry)
    }

    fn check_enterable(&self, id: &str, section: &str) -> Result<(), DiffError> {
        if !is_section_name(section) {
            return Err(unexpressible(id, format!("{section:?} is not a section name")));
        }
        if self.doc.is_protected(section) {
            return Err(DiffError::Protected {
                id: id.to_string(),
                section: section.to_string(),
            });
        }
        Ok(())
    }
}

/// The change that rewrites `was` into `entry`: a Reinforce when only the evidence and the
/// reinforcement time moved (and the time is set), otherwise an Update.
fn edit(was: &Entry, entry: &Entry) -> Result<Change, DiffError> {
    if let (true, Some(at)) = (is_reinforcement(was, entry), entry.reinforced) {
        return Ok(Change::Reinforce {
            id: entry.id.clone(),
            evidence: entry.evidence.clone(),
            at,
        });
    }
    if was.pinned != entry.pinned {
        return Err(pinned(&entry.id));
    }
    Ok(Change::Update { entry: entry.clone() })
}

/// Whether `entry` is `was` with new evidence and a set reinforcement time, nothing else.
fn is_reinforcement(was: &Entry, entry: &Entry) -> bool {
    entry.reinforced.is_some()
        && was.id == entry.id
        && was.text == entry.text
        && was.kind == entry.kind
        && was.provenance == entry.provenance
        && was.created == entry.created
        && was.pinned == entry.pinned
}

/// `apply` truncates longer session samples, so a document holding one is not reachable.
fn check_sessions(id: &str, entry: &Entry) -> Result<(), DiffError> {
    if entry.evidence.sessions.len() > MAX_EXAMPLE_SESSIONS {
        let reason = format!("its evidence lists more than {MAX_EXAMPLE_SESSIONS} example sessions");
        return Err(unexpressible(id, reason));
    }
    Ok(())
}

fn pinned(id: &str) -> DiffError {
    DiffError::Pinned { id: id.to_string() }
}

fn unexpressible(id: &str, reason: impl Into<String>) -> DiffError {
    DiffError::Unexpressible {
        id: id.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::change::apply;
    use crate::memory::document::Evidence;
    use crate::memory::proptests::fixtures::{entry, sample, ts};

    fn edited(edit: impl FnOnce(&mut MemoryDocument)) -> MemoryDocument {
        let mut doc = sample();
        edit(&mut doc);
        doc.normalize();
        doc
    }

    fn live<'a>(doc: &'a mut MemoryDocument, id: &str) -> &'a mut Entry {
        doc.sections
            .iter_mut()
            .flat_map(|s| s.entries.iter_mut())
            .find(|e| e.id == id)
            .expect("fixture entry")
    }

    fn take(doc: &mut MemoryDocument, id: &str) -> (String, Entry) {
        let section = doc
            .sections
            .iter_mut()
            .find(|s| s.entries.iter().any(|e| e.id == id))
            .unwrap();
        let index = section.entries.iter().position(|e| e.id == id).unwrap();
        (section.name.clone(), section.entries.remove(index))
    }

    fn archive_entry(doc: &mut MemoryDocument, id: &str, reason: &str) {
        let (section, entry) = take(doc, id);
        doc.archive.push(ArchivedEntry {
            entry,
            section,
            archived: ts(50),
            reason: reason.into(),
        });
    }

    #[test]
    fn identical_documents_need_no_changes() {
        assert_eq!(diff(&sample(), &sample()), Ok(Vec::new()));
    }

    #[test]
    fn changes_come_grouped_so_they_apply_and_reach_the_target() {
        let target = edited(|doc| {
            archive_entry(doc, "fact-1", "merged into lesson-1");
            live(doc, "lesson-1").text = "Look accounts up by billing id, never by email.".into();
            let (_, pref) = take(doc, "pref-1");
            doc.section_mut("team-notes").entries.push(pref);
            let pinned = live(doc, "lesson-2");
            pinned.evidence.count = 9;
            pinned.reinforced = Some(ts(60));
            doc.section_mut("facts")
                .entries
                .push(entry("fact-2", "Refunds take 5 days.", 40));
            doc.archive.retain(|a| a.entry.id != "lesson-old");
            doc.section_mut("lessons")
                .entries
                .push(entry("lesson-old", "Use the new portal.", 41));
        });
        let changes = diff(&sample(), &target).unwrap();
        let ops: Vec<(&str, &str)> = changes.iter().map(|c| (c.op_name(), c.id())).collect();
        assert_eq!(
            ops,
            [
                ("Add", "lesson-old"),
                ("Add", "fact-2"),
                ("Move", "pref-1"),
                ("Update", "lesson-1"),
                ("Reinforce", "lesson-2"),
                ("Archive", "fact-1"),
            ]
        );
        assert_eq!(apply(&sample(), &changes), Ok(target));
    }

    #[test]
    fn replaced_and_re_archived_entries_are_expressed_with_archive_and_add() {
        let target = edited(|doc| {
            live(doc, "pref-1").created = ts(70);
            let old = doc.archive.iter_mut().find(|a| a.entry.id == "lesson-old").unwrap();
            old.reason = "contradicted".into();
        });
        let changes = diff(&sample(), &target).unwrap();
        let ops: Vec<(&str, &str)> = changes.iter().map(|c| (c.op_name(), c.id())).collect();
        assert_eq!(
            ops,
            [
                ("Archive", "pref-1"),
                ("Add", "pref-1"),
                ("Add", "lesson-old"),
                ("Archive", "lesson-old")
            ]
        );
        assert_eq!(apply(&sample(), &changes), Ok(target));
    }

    #[test]
    fn what_only_the_operator_may_change_is_refused() {
        let cases = [
            (
                edited(|doc| doc.version = 2),
                "the format version differs (1 → 2); only the operator migrates a memory",
            ),
            (
                edited(|doc| doc.set_protected(&[])),
                "the protected-section list differs; only the operator changes it, from spec.memory.protectedSections",
            ),
            (
                edited(|doc| live(doc, "core-instructions").text = "Be rude.".into()),
                "entry core-instructions differs inside protected section core; only the operator changes protected sections",
            ),
            (
                edited(|doc| doc.section_mut("safety").entries.push(entry("safety-2", "x", 9))),
                "entry safety-2 differs inside protected section safety; only the operator changes protected sections",
            ),
            (
                edited(|doc| live(doc, "lesson-2").text = "x".into()),
                "entry lesson-2 is or becomes pinned and differs in more than its evidence; only a reviewer pins, unpins or edits a pinned entry",
            ),
            (
                edited(|doc| live(doc, "lesson-1").pinned = true),
                "entry lesson-1 is or becomes pinned and differs in more than its evidence; only a reviewer pins, unpins or edits a pinned entry",
            ),
            (
                edited(|doc| archive_entry(doc, "lesson-2", "stale")),
                "entry lesson-2 is or becomes pinned and differs in more than its evidence; only a reviewer pins, unpins or edits a pinned entry",
            ),
            (
                edited(|doc| {
                    take(doc, "fact-1");
                }),
                "entry fact-1 is gone; changes never delete entries (they archive them), only archive pruning does",
            ),
            (
                edited(|doc| doc.archive.clear()),
                "entry lesson-old is gone; changes never delete entries (they archive them), only archive pruning does",
            ),
            (
                edited(|doc| {
                    live(doc, "fact-1").evidence = Evidence {
                        count: 9,
                        sessions: (0..9).map(|i| format!("s-{i}")).collect(),
                        ..Evidence::default()
                    }
                }),
                "entry fact-1: its evidence lists more than 5 example sessions",
            ),
        ];
        for (target, expected) in cases {
            assert_eq!(
                diff(&sample(), &target).map_err(|e| e.to_string()),
                Err(expected.to_string())
            );
        }
    }
}
