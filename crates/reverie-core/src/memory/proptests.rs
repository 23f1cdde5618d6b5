//! Properties of the memory core, checked on generated documents and change lists, and the
//! fixtures its unit tests share.
//!
//! Documents have every standard section plus a custom one, a protected section (`safety`,
//! sometimes `workflows` too) besides `core`, pinned entries, an archive, and texts chosen to
//! trip up YAML. Legal change lists are built by picking, step by step, an edit the rules allow
//! against the document as it is at that step; hostile ones aim at `core`, protected sections
//! and pinned entries.

use std::collections::HashSet;

use jiff::Timestamp;
use proptest::prelude::*;
use proptest::sample::select;

use super::change::{Change, apply};
use super::diff::{EntryState, diff, entry_states};
use super::document::{ArchivedEntry, Entry, EntryKind, Evidence, MemoryDocument, Provenance};
use super::rebase::rebase;
use super::{digest, from_yaml, to_yaml};

/// Small documents for the unit tests of `change`, `diff` and `rebase`.
pub(super) mod fixtures {
    use super::*;

    /// A time `second`s after a fixed origin.
    pub fn ts(second: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + second).expect("in range")
    }

    /// An unpinned entry whose kind follows its id's prefix (`pref-`, `fact-`, else a lesson).
    pub fn entry(id: &str, text: &str, created: i64) -> Entry {
        let kind = match id.split('-').next() {
            Some("pref") => EntryKind::Preference,
            Some("fact") => EntryKind::Fact,
            _ => EntryKind::Lesson,
        };
        Entry {
            id: id.to_string(),
            text: text.to_string(),
            kind,
            evidence: Evidence {
                count: 3,
                first_seen: Some(ts(created)),
                last_seen: Some(ts(created + 5)),
                sessions: vec!["s-0142".into(), "s-0143".into()],
                ..Evidence::default()
            },
            provenance: None,
            created: ts(created),
            reinforced: None,
            pinned: false,
        }
    }

    /// `core` (instructions), protected `safety` (`safety-1`), `lessons` (`lesson-1`, pinned
    /// `lesson-2`), `preferences` (`pref-1`), `facts` (`fact-1`), and `lesson-old` archived.
    pub fn sample() -> MemoryDocument {
        let mut doc = MemoryDocument::with_instructions("Help customers with billing.", &["safety".into()], ts(0));
        let mut pinned = entry("lesson-2", "Never promise delivery dates.", 3);
        pinned.pinned = true;
        let placed = [
            ("safety", entry("safety-1", "Never share account numbers.", 1)),
            ("lessons", entry("lesson-1", "Look accounts up by billing id.", 2)),
            ("lessons", pinned),
            ("preferences", entry("pref-1", "Keep replies short.", 4)),
            ("facts", entry("fact-1", "Invoices are issued on the 1st.", 5)),
        ];
        for (section, entry) in placed {
            doc.section_mut(section).entries.push(entry);
        }
        doc.archive.push(ArchivedEntry {
            entry: entry("lesson-old", "Use the legacy portal.", 0),
            section: "lessons".into(),
            archived: ts(10),
            reason: "stale".into(),
        });
        doc.normalize();
        doc
    }
}

use fixtures::ts;

const SECTIONS: [&str; 7] = [
    "core",
    "safety",
    "lessons",
    "preferences",
    "workflows",
    "facts",
    "team-notes",
];
const REASONS: [&str; 4] = ["stale", "contradicted", "compacted", "merged into e0"];

/// Texts that YAML likes to reinterpret.
const TRICKY_TEXTS: [&str; 18] = [
    "yes",
    "null",
    "~",
    "- not a list",
    "key: value",
    "# not a comment",
    "  leading spaces",
    "trailing spaces  ",
    "two\nlines\n",
    "'single' and \"double\" quotes",
    "0x1F",
    "1e3",
    "ünïcödé, 東京 and emoji 🎉",
    "{flow: map}",
    "[flow, list]",
    "&anchor *alias !tag %directive @at `tick`",
    "| block\n> folded",
    "tab\there and CRLF\r\nline",
];

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(&TRICKY_TEXTS[..]).prop_map(str::to_string),
        2 => "[a-zA-Z0-9 ,.:;#'\"!?()\\-]{1,60}",
        1 => "\\PC{0,40}",
    ]
}

fn arb_time() -> impl Strategy<Value = Timestamp> {
    (0i64..100_000, prop_oneof![3 => Just(0i32), 1 => 0i32..1_000_000_000])
        .prop_map(|(second, nanos)| Timestamp::new(1_790_000_000 + second, nanos).expect("in range"))
}

fn arb_kind() -> impl Strategy<Value = EntryKind> {
    select(
        &[
            EntryKind::Instruction,
            EntryKind::Lesson,
            EntryKind::Preference,
            EntryKind::Workflow,
            EntryKind::Fact,
        ][..],
    )
}

prop_compose! {
    fn arb_evidence()(
        count in 0u32..20,
        sessions in prop::collection::vec("s-[0-9a-f]{4}", 0..=5),
        first_seen in prop::option::of(arb_time()),
        last_seen in prop::option::of(arb_time()),
    ) -> Evidence {
        Evidence {
            count,
            first_seen,
            last_seen,
            sessions,
            ..Evidence::default()
        }
    }
}

prop_compose! {
    fn arb_provenance()(
        source in select(&["dream/support-7", "agent-spec", "kubectl"][..]),
        approved_by in prop::option::of(select(&["alice", "policy"][..])),
        at in arb_time(),
    ) -> Provenance {
        Provenance { source: source.to_string(), approved_by: approved_by.map(str::to_string), at, revision: None, applied: None }
    }
}

prop_compose! {
    /// An entry without its id (the document gives ids so they are unique).
    fn arb_entry()(
        text in arb_text(),
        kind in arb_kind(),
        evidence in arb_evidence(),
        provenance in prop::option::of(arb_provenance()),
        created in arb_time(),
        reinforced in prop::option::of(arb_time()),
        pinned in prop::bool::weighted(0.15),
    ) -> Entry {
        Entry { id: String::new(), text, kind, evidence, provenance, created, reinforced, pinned }
    }
}

prop_compose! {
    /// A valid document in canonical form.
    fn arb_doc()(
        instructions in arb_text(),
        protect_workflows in any::<bool>(),
        live in prop::collection::vec((0..SECTIONS.len(), arb_entry()), 0..25),
        archived in prop::collection::vec((0..SECTIONS.len(), arb_entry(), arb_time(), select(&REASONS[..])), 0..8),
    ) -> MemoryDocument {
        let mut protected = vec!["safety".to_string()];
        if protect_workflows {
            protected.push("workflows".into());
        }
        let mut doc = MemoryDocument::with_instructions(&instructions, &protected, ts(0));
        for (i, (section, mut entry)) in live.into_iter().enumerate() {
            entry.id = format!("e{i}");
            doc.section_mut(SECTIONS[section]).entries.push(entry);
        }
        for (i, (section, mut entry, archived, reason)) in archived.into_iter().enumerate() {
            entry.id = format!("a{i}");
            doc.archive.push(ArchivedEntry { entry, section: SECTIONS[section].to_string(), archived, reason: reason.to_string() });
        }
        doc.normalize();
        doc
    }
}

/// The raw choices behind one change; [`legal_changes`] and [`hostile_change`] turn them into
/// a change against the document as it is at that point.
#[derive(Clone, Debug)]
struct Intent {
    op: u8,
    pick: usize,
    other: usize,
    section: usize,
    restore: bool,
    kind: EntryKind,
    text: String,
    at: Timestamp,
    evidence: Evidence,
}

prop_compose! {
    fn arb_intent()(
        op in 0u8..6,
        pick in any::<usize>(),
        other in any::<usize>(),
        section in any::<usize>(),
        restore in any::<bool>(),
        kind in arb_kind(),
        text in arb_text(),
        at in arb_time(),
        evidence in arb_evidence(),
    ) -> Intent {
        Intent { op, pick, other, section, restore, kind, text, at, evidence }
    }
}

fn arb_intents() -> impl Strategy<Value = Vec<Intent>> {
    prop::collection::vec(arb_intent(), 0..12)
}

/// What a legal change may pick from in `doc`, leaving out the `excluded` ids.
struct Candidates<'a> {
    /// Live, outside protected sections, not pinned: may be rewritten, moved, archived, merged.
    unpinned: Vec<&'a Entry>,
    /// Live, outside protected sections: may be reinforced.
    editable: Vec<&'a str>,
    /// Archived and not pinned: may be restored by an Add.
    restorable: Vec<&'a str>,
    /// Sections entries may enter.
    open_sections: Vec<&'static str>,
}

impl<'a> Candidates<'a> {
    fn of(doc: &'a MemoryDocument, excluded: &HashSet<String>) -> Self {
        let allowed = |id: &str| !excluded.contains(id);
        let editable: Vec<(&str, &Entry)> = doc
            .entries()
            .filter(|(section, e)| !doc.is_protected(section) && allowed(&e.id))
            .collect();
        Candidates {
            unpinned: editable.iter().filter(|(_, e)| !e.pinned).map(|(_, e)| *e).collect(),
            editable: editable.iter().map(|(_, e)| e.id.as_str()).collect(),
            restorable: doc
                .archive
                .iter()
                .filter(|a| !a.entry.pinned && allowed(&a.entry.id))
                .map(|a| a.entry.id.as_str())
                .collect(),
            open_sections: SECTIONS.into_iter().filter(|s| !doc.is_protected(s)).collect(),
        }
    }
}

fn nth<T: Copy>(items: &[T], pick: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[pick % items.len()])
}

/// A legal change for `intent` against `doc`, if the document offers a target for it. New
/// ids are `<prefix><n>`.
fn legal_change(doc: &MemoryDocument, intent: &Intent, excluded: &HashSet<String>, new_id: String) -> Option<Change> {
    let found = Candidates::of(doc, excluded);
    let rewritten = |entry: &Entry| Entry {
        text: intent.text.clone(),
        kind: intent.kind,
        evidence: intent.evidence.clone(),
        ..entry.clone()
    };
    let change = match intent.op {
        0 => {
            let id = if intent.restore {
                nth(&found.restorable, intent.pick).map(str::to_string)
            } else {
                None
            };
            let entry = Entry {
                id: id.unwrap_or(new_id),
                text: intent.text.clone(),
                kind: intent.kind,
                evidence: intent.evidence.clone(),
                provenance: None,
                created: intent.at,
                reinforced: None,
                pinned: false,
            };
            let section = nth(&found.open_sections, intent.section)?.to_string();
            Change::Add { section, entry }
        }
        1 => Change::Update {
            entry: rewritten(nth(&found.unpinned, intent.pick)?),
        },
        2 => Change::Archive {
            id: nth(&found.unpinned, intent.pick)?.id.clone(),
            at: intent.at,
            reason: "stale".into(),
        },
        3 => {
            let target = nth(&found.unpinned, intent.pick)?;
            let others: Vec<&Entry> = found.unpinned.iter().copied().filter(|e| e.id != target.id).collect();
            let merged = nth(&others, intent.other)?;
            Change::Merge {
                entry: rewritten(target),
                from: vec![merged.id.clone()],
                at: intent.at,
            }
        }
        4 => {
            let entry = nth(&found.unpinned, intent.pick)?;
            let (current, _) = doc.find(&entry.id)?;
            let targets: Vec<&str> = found
                .open_sections
                .iter()
                .copied()
                .filter(|s| *s != current.name)
                .collect();
            Change::Move {
                id: entry.id.clone(),
                to: nth(&targets, intent.section)?.to_string(),
            }
        }
        _ => Change::Reinforce {
            id: nth(&found.editable, intent.pick)?.to_string(),
            evidence: intent.evidence.clone(),
            at: intent.at,
        },
    };
    Some(change)
}

/// Turns intents into a list of legal changes, each checked to apply where it stands, touching
/// none of the `excluded` ids. Returns the changes and the document they lead to.
fn legal_changes(
    doc: &MemoryDocument,
    intents: &[Intent],
    prefix: &str,
    excluded: &HashSet<String>,
) -> (Vec<Change>, MemoryDocument) {
    let mut current = doc.clone();
    let mut changes = Vec::new();
    for (n, intent) in intents.iter().enumerate() {
        if let Some(change) = legal_change(&current, intent, excluded, format!("{prefix}{n}")) {
            current = apply(&current, std::slice::from_ref(&change))
                .unwrap_or_else(|e| panic!("a legal change was refused: {e}\n{change:?}"));
            changes.push(change);
        }
    }
    (changes, current)
}

/// A change aimed at what must not move: `core`, protected sections, pinned entries (when
/// `intent.restore`), or anything at all, with sections and pins chosen to break rules.
fn hostile_change(doc: &MemoryDocument, intent: &Intent) -> Change {
    let sensitive: Vec<&str> = doc
        .entries()
        .filter(|(section, e)| doc.is_protected(section) || e.pinned)
        .map(|(_, e)| e.id.as_str())
        .collect();
    let mut everything: Vec<&str> = entry_states(doc).map(|(id, _)| id).collect();
    everything.extend(["ghost", ""]);
    let pool = if intent.restore && !sensitive.is_empty() {
        &sensitive
    } else {
        &everything
    };
    let id = pool[intent.pick % pool.len()].to_string();
    let sections = [SECTIONS.as_slice(), &["Bad Name", ""]].concat();
    let section = sections[intent.section % sections.len()].to_string();
    let mut entry = doc
        .find(&id)
        .map_or_else(|| fixtures::entry(&id, "x", 0), |(_, e)| e.clone());
    entry.text = intent.text.clone();
    entry.pinned ^= intent.other.is_multiple_of(4);
    if intent.other.is_multiple_of(5) {
        entry.created = intent.at;
    }
    match intent.op {
        0 => Change::Add { section, entry },
        1 => Change::Update { entry },
        2 => Change::Archive {
            id,
            at: intent.at,
            reason: "hostile".into(),
        },
        3 => {
            let other = everything[intent.other % everything.len()].to_string();
            Change::Merge {
                entry,
                from: vec![other],
                at: intent.at,
            }
        }
        4 => Change::Move { id, to: section },
        _ => Change::Reinforce {
            id,
            evidence: intent.evidence.clone(),
            at: intent.at,
        },
    }
}

/// Legal changes with hostile ones mixed in (each hostile change made against the document as
/// the legal changes before it left it).
fn mixed_changes(doc: &MemoryDocument, intents: &[(bool, Intent)]) -> Vec<Change> {
    let mut current = doc.clone();
    let mut changes = Vec::new();
    for (n, (hostile, intent)) in intents.iter().enumerate() {
        let change = if *hostile {
            Some(hostile_change(&current, intent))
        } else {
            legal_change(&current, intent, &HashSet::new(), format!("n{n}"))
        };
        if let Some(change) = change {
            if let Ok(next) = apply(&current, std::slice::from_ref(&change)) {
                current = next;
            }
            changes.push(change);
        }
    }
    changes
}

/// What a change may never alter: the protected list, every protected section, and every
/// pinned entry (its evidence and reinforcement time aside, since reinforcing is allowed).
fn assert_guarded(before: &MemoryDocument, after: &MemoryDocument) -> Result<(), TestCaseError> {
    prop_assert_eq!(&before.protected, &after.protected);
    let protected = before.sections.iter().filter(|s| before.is_protected(&s.name));
    for section in protected {
        prop_assert_eq!(Some(section), after.section(&section.name));
    }
    for name in SECTIONS.into_iter().filter(|s| before.is_protected(s)) {
        prop_assert_eq!(before.section(name).is_some(), after.section(name).is_some());
    }
    for (section, pinned) in before.entries().filter(|(_, e)| e.pinned) {
        let now = after.find(&pinned.id).map(|(s, e)| (s.name.as_str(), e));
        let (now_in, now) = now.ok_or_else(|| TestCaseError::fail(format!("pinned {} is gone", pinned.id)))?;
        prop_assert_eq!(now_in, section);
        let reinforced_only = Entry {
            evidence: now.evidence.clone(),
            reinforced: now.reinforced,
            ..pinned.clone()
        };
        prop_assert_eq!(now, &reinforced_only);
    }
    Ok(())
}

/// Ids whose state differs between two documents.
fn changed_ids(a: &MemoryDocument, b: &MemoryDocument) -> Vec<String> {
    let before: std::collections::HashMap<&str, EntryState> = entry_states(a).collect();
    let after: std::collections::HashMap<&str, EntryState> = entry_states(b).collect();
    let mut ids: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|id| before.get(*id) != after.get(*id))
        .map(|id| id.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A legal change against `base` that touches `id` (which the other side changed).
fn touching(base: &MemoryDocument, id: &str, at: Timestamp) -> Option<Change> {
    match entry_states(base)
        .find(|(other, _)| *other == id)
        .map(|(_, state)| state)
    {
        Some(EntryState::Live { section, .. }) if !base.is_protected(section) => Some(Change::Reinforce {
            id: id.to_string(),
            evidence: Evidence::default(),
            at,
        }),
        Some(EntryState::Archived(archived)) if !archived.entry.pinned => Some(Change::Add {
            section: "lessons".into(),
            entry: fixtures::entry(id, "again", 0),
        }),
        None => Some(Change::Add {
            section: "lessons".into(),
            entry: fixtures::entry(id, "concurrent", 0),
        }),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn diff_then_apply_reaches_the_target((a, intents) in (arb_doc(), arb_intents())) {
        let (_, b) = legal_changes(&a, &intents, "n", &HashSet::new());
        let changes = diff(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(apply(&a, &changes).map_err(|e| TestCaseError::fail(e.to_string()))?, b.clone());
        prop_assert_eq!(diff(&b, &b).ok(), Some(Vec::new()));
    }

    #[test]
    fn disjoint_proposals_rebase_to_the_same_document(
        (base, first, second) in (arb_doc(), arb_intents(), arb_intents())
    ) {
        let (c1, after1) = legal_changes(&base, &first, "m1-", &HashSet::new());
        let touched: HashSet<String> = c1.iter().flat_map(Change::touched_ids).map(str::to_string).collect();
        let (c2, after2) = legal_changes(&base, &second, "m2-", &touched);
        let c2_rebased = rebase(&base, &after1, &c2).map_err(|c| TestCaseError::fail(format!("{c:?}")))?;
        let c1_rebased = rebase(&base, &after2, &c1).map_err(|c| TestCaseError::fail(format!("{c:?}")))?;
        let one_way = apply(&after1, &c2_rebased).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let other_way = apply(&after2, &c1_rebased).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(one_way, other_way);
    }

    #[test]
    fn no_change_list_alters_protected_sections_or_pinned_entries(
        (doc, intents) in (arb_doc(), prop::collection::vec((any::<bool>(), arb_intent()), 1..10))
    ) {
        let changes = mixed_changes(&doc, &intents);
        if let Ok(after) = apply(&doc, &changes) {
            assert_guarded(&doc, &after)?;
        }
    }

    #[test]
    fn overlapping_proposals_conflict(
        (base, first, second, pick) in (arb_doc(), arb_intents(), arb_intents(), any::<usize>())
    ) {
        let (c1, after1) = legal_changes(&base, &first, "m1-", &HashSet::new());
        let changed = changed_ids(&base, &after1);
        prop_assume!(!changed.is_empty());
        let id = &changed[pick % changed.len()];
        let forced = touching(&base, id, ts(1));
        prop_assume!(forced.is_some());
        let (mut c2, _) = legal_changes(&base, &second, "m2-", &HashSet::from([id.clone()]));
        c2.extend(forced);
        let conflicts = match rebase(&base, &after1, &c2) {
            Ok(_) => return Err(TestCaseError::fail(format!("{id} changed on both sides, yet the rebase succeeded ({c1:?})"))),
            Err(conflicts) => conflicts,
        };
        prop_assert!(conflicts.iter().any(|c| c.index == c2.len() - 1 && &c.id == id), "{conflicts:?}");
    }

    #[test]
    fn yaml_round_trip_is_exact_and_digest_stable(doc in arb_doc()) {
        let yaml = to_yaml(&doc);
        let back = from_yaml(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(&back, &doc);
        prop_assert_eq!(to_yaml(&back), yaml);
        prop_assert_eq!(digest(&back), digest(&doc));
    }
}
