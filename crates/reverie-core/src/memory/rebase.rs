//! Three-way rebase: carrying a proposal computed on an older revision over to the current one
//! when, and only when, nothing it touches has changed in between. Never a silent overwrite.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::change::Change;
use super::diff::{EntryState, entry_states};
use super::document::MemoryDocument;

/// What happened to an entry between the proposal's base revision and the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConflictKind {
    /// Its content changed (or, for an archived entry, its archive record).
    Updated,
    /// It went from the loaded memory to the archive.
    Archived,
    /// It changed section.
    Moved,
    /// It did not exist at the base and exists now.
    AddedConcurrently,
    /// It existed at the base and is gone now (archive pruning).
    Deleted,
    /// It was archived at the base and is loaded again now.
    Restored,
    /// A section the change writes to became protected.
    NowProtected,
}

impl ConflictKind {
    fn describe(self) -> &'static str {
        match self {
            ConflictKind::Updated => "was updated",
            ConflictKind::Archived => "was archived",
            ConflictKind::Moved => "was moved to another section",
            ConflictKind::AddedConcurrently => "was added concurrently",
            ConflictKind::Deleted => "was deleted (pruned from the archive)",
            ConflictKind::Restored => "was restored from the archive",
            ConflictKind::NowProtected => "is in, or goes to, a section that became protected",
        }
    }
}

/// A change of a proposal that touches an entry changed since the proposal's base revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// Position of the change in the proposal (`changes[index]`).
    pub index: usize,
    pub op: &'static str,
    /// The entry that changed since the base.
    pub id: String,
    pub what: ConflictKind,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "changes[{}] ({} {}): entry {} {} since the proposal's base revision",
            self.index,
            self.op,
            self.id,
            self.id,
            self.what.describe()
        )
    }
}

/// Carries `changes`, computed against `base`, over to `current`.
///
/// An entry has changed since the base when its state differs between the two documents: its
/// section, its content, its archive record, or whether it exists at all. The rebase succeeds,
/// returning the changes to apply to `current`, when no change touches such an entry and no
/// change writes into a section that became protected. Otherwise it returns every conflict, in
/// change order, so the reviewer sees them all at once.
///
/// A change that was invalid against `base` already (say, an Add of an id that existed there
/// and still does) is not a conflict: `apply` refuses it with its usual error.
///
/// Since every rule of [`super::apply`] depends only on the touched entries and on which
/// sections are protected, changes that applied to `base` and rebase cleanly also apply to
/// `current`, with the same effect on the entries they touch.
pub fn rebase(
    base: &MemoryDocument,
    current: &MemoryDocument,
    changes: &[Change],
) -> Result<Vec<Change>, Vec<Conflict>> {
    let states = touched_states(base, current, changes);
    let conflicts: Vec<Conflict> = changes
        .iter()
        .enumerate()
        .flat_map(|(index, change)| conflicts_of(base, current, &states, index, change))
        .collect();
    if conflicts.is_empty() {
        Ok(changes.to_vec())
    } else {
        Err(conflicts)
    }
}

/// The state at the base and now of each touched id.
type States<'a> = HashMap<&'a str, (Option<EntryState<'a>>, Option<EntryState<'a>>)>;

/// Looks the touched ids up in one pass over each document, without indexing the rest.
fn touched_states<'a>(base: &'a MemoryDocument, current: &'a MemoryDocument, changes: &'a [Change]) -> States<'a> {
    let mut states: States = changes
        .iter()
        .flat_map(Change::touched_ids)
        .map(|id| (id, (None, None)))
        .collect();
    for (id, state) in entry_states(base) {
        if let Some(slot) = states.get_mut(id) {
            slot.0 = Some(state);
        }
    }
    for (id, state) in entry_states(current) {
        if let Some(slot) = states.get_mut(id) {
            slot.1 = Some(state);
        }
    }
    states
}

fn conflicts_of(
    base: &MemoryDocument,
    current: &MemoryDocument,
    states: &States,
    index: usize,
    change: &Change,
) -> Vec<Conflict> {
    let conflict = |id: &str, what| Conflict {
        index,
        op: change.op_name(),
        id: id.to_string(),
        what,
    };
    let newly_protected = |section: &str| !base.is_protected(section) && current.is_protected(section);
    let mut found = Vec::new();
    for id in change.touched_ids() {
        let (then, now) = states.get(id).copied().unwrap_or_default();
        if let Some(what) = what_changed(then, now) {
            found.push(conflict(id, what));
        } else if let Some(EntryState::Live { section, .. }) = now
            && newly_protected(section)
        {
            found.push(conflict(id, ConflictKind::NowProtected));
        }
    }
    let entered = match change {
        Change::Add { section, .. } => Some(section),
        Change::Move { to, .. } => Some(to),
        _ => None,
    };
    if let Some(section) = entered
        && newly_protected(section)
        && found.is_empty()
    {
        found.push(conflict(change.id(), ConflictKind::NowProtected));
    }
    found
}

fn what_changed(then: Option<EntryState>, now: Option<EntryState>) -> Option<ConflictKind> {
    use EntryState::{Archived, Live};
    let kind = match (then, now) {
        _ if then == now => return None,
        (None, _) => ConflictKind::AddedConcurrently,
        (_, None) => ConflictKind::Deleted,
        (Some(Live { .. }), Some(Archived(_))) => ConflictKind::Archived,
        (Some(Archived(_)), Some(Live { .. })) => ConflictKind::Restored,
        (Some(Live { section: a, .. }), Some(Live { section: b, .. })) if a != b => ConflictKind::Moved,
        _ => ConflictKind::Updated,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::change::apply;
    use crate::memory::document::{Entry, Evidence};
    use crate::memory::proptests::fixtures::{entry, sample, ts};

    fn reinforce(id: &str) -> Change {
        Change::Reinforce {
            id: id.into(),
            evidence: Evidence::default(),
            at: ts(80),
        }
    }

    fn add(section: &str, entry: Entry) -> Change {
        Change::Add {
            section: section.into(),
            entry,
        }
    }

    fn rewritten(id: &str, text: &str) -> Entry {
        Entry {
            text: text.into(),
            ..sample().find(id).unwrap().1.clone()
        }
    }

    /// The current revision: the base after someone else's approved proposal.
    fn current() -> MemoryDocument {
        let concurrent = [
            Change::Update {
                entry: rewritten("lesson-1", "Use the billing id."),
            },
            Change::Archive {
                id: "pref-1".into(),
                at: ts(70),
                reason: "stale".into(),
            },
            Change::Move {
                id: "fact-1".into(),
                to: "team-notes".into(),
            },
            add("facts", entry("fact-9", "New fact.", 70)),
            add("lessons", entry("lesson-old", "Restored.", 71)),
        ];
        apply(&sample(), &concurrent).unwrap()
    }

    #[test]
    fn untouched_entries_rebase_cleanly_and_apply() {
        let changes = [
            reinforce("lesson-2"),
            add("facts", entry("fact-10", "Another fact.", 72)),
        ];
        let rebased = rebase(&sample(), &current(), &changes).unwrap();
        assert_eq!(rebased, changes);
        let doc = apply(&current(), &rebased).unwrap();
        assert_eq!(
            doc.find("lesson-1").unwrap().1.text,
            "Use the billing id.",
            "the concurrent edit is kept"
        );
        assert!(doc.find("fact-10").is_some());
    }

    #[test]
    fn every_conflict_is_reported_with_what_happened() {
        let mut base = sample();
        base.archive.push(crate::memory::document::ArchivedEntry {
            entry: entry("lesson-gone", "x", 0),
            section: "lessons".into(),
            archived: ts(11),
            reason: "stale".into(),
        });
        base.normalize();
        let changes = [
            reinforce("lesson-2"),
            Change::Update {
                entry: rewritten("lesson-1", "Mine."),
            },
            reinforce("pref-1"),
            Change::Move {
                id: "fact-1".into(),
                to: "lessons".into(),
            },
            add("facts", entry("fact-9", "Also new.", 70)),
            add("lessons", entry("lesson-gone", "Back.", 70)),
            Change::Merge {
                entry: rewritten("lesson-2", "x"),
                from: vec!["lesson-old".into()],
                at: ts(80),
            },
        ];
        let conflicts = rebase(&base, &current(), &changes).unwrap_err();
        let found: Vec<(usize, &str, ConflictKind)> =
            conflicts.iter().map(|c| (c.index, c.id.as_str(), c.what)).collect();
        assert_eq!(
            found,
            [
                (1, "lesson-1", ConflictKind::Updated),
                (2, "pref-1", ConflictKind::Archived),
                (3, "fact-1", ConflictKind::Moved),
                (4, "fact-9", ConflictKind::AddedConcurrently),
                (5, "lesson-gone", ConflictKind::Deleted),
                (6, "lesson-old", ConflictKind::Restored),
            ]
        );
        assert_eq!(
            conflicts[0].to_string(),
            "changes[1] (Update lesson-1): entry lesson-1 was updated since the proposal's base revision"
        );
        assert_eq!(
            serde_json::to_value(&conflicts[3]).unwrap(),
            serde_json::json!({"index": 4, "op": "Add", "id": "fact-9", "what": "addedConcurrently"})
        );
    }

    #[test]
    fn writing_into_a_section_that_became_protected_conflicts() {
        let mut now = sample();
        now.set_protected(&["safety".into(), "facts".into()]);
        let changes = [
            reinforce("fact-1"),
            add("facts", entry("fact-2", "x", 9)),
            Change::Move {
                id: "lesson-1".into(),
                to: "facts".into(),
            },
            reinforce("lesson-1"),
        ];
        let conflicts = rebase(&sample(), &now, &changes).unwrap_err();
        let found: Vec<(usize, &str)> = conflicts.iter().map(|c| (c.index, c.id.as_str())).collect();
        assert_eq!(found, [(0, "fact-1"), (1, "fact-2"), (2, "lesson-1")]);
        assert!(conflicts.iter().all(|c| c.what == ConflictKind::NowProtected));
        assert!(conflicts[1].to_string().ends_with(
            "entry fact-2 is in, or goes to, a section that became protected since the proposal's base revision"
        ));
    }
}
