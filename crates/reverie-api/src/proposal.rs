//! Translation between the memory core's [`Change`]s and a MemoryProposal's reviewable
//! [`ProposedChange`]s.
//!
//! A proposal shows reviewers text, sections and evidence, not the memory's internal fields, so
//! the way back ([`to_changes`]) fills those fields deterministically from the base memory and
//! the proposal itself: the same proposal on the same base always yields the same changes,
//! which is what makes applying it idempotent.

use jiff::Timestamp;

use crate::memory_proposal::{ChangeOp, Evidence as ApiEvidence, ProposedChange};
use reverie_core::dream::report::ChangeView;
use reverie_core::memory::MemoryDocument;
use reverie_core::memory::change::Change;
use reverie_core::memory::document::{Entry, EntryKind, Evidence, MAX_EXAMPLE_SESSIONS, Provenance};

/// Why a proposed change cannot become a memory change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("changes[{index}] ({op:?}): {message}")]
pub struct ConvertError {
    pub index: usize,
    pub op: ChangeOp,
    pub message: String,
}

/// The reviewable form of `changes`, which turn `before` into `after`.
pub fn to_proposed(changes: &[Change], before: &MemoryDocument, after: &MemoryDocument) -> Vec<ProposedChange> {
    changes
        .iter()
        .map(|change| {
            let view = ChangeView::of(change, before, after);
            let evidence = change_evidence(change, after);
            ProposedChange {
                op: op_of(change),
                id: Some(change.id().to_string()),
                ids: match change {
                    Change::Merge { from, .. } => from.clone(),
                    _ => Vec::new(),
                },
                section: Some(view.section).filter(|s| !s.is_empty()),
                before: before.find(change.id()).map(|(_, e)| e.text.clone()),
                after: match change {
                    Change::Archive { .. } => None,
                    _ => Some(view.text).filter(|t| !t.is_empty()),
                },
                evidence: evidence.filter(|e| !e.is_empty()).map(api_evidence),
                rationale: Some(view.rationale).filter(|r| !r.is_empty()),
            }
        })
        .collect()
}

fn op_of(change: &Change) -> ChangeOp {
    match change {
        Change::Add { .. } => ChangeOp::Add,
        Change::Update { .. } => ChangeOp::Update,
        Change::Archive { .. } => ChangeOp::Archive,
        Change::Merge { .. } => ChangeOp::Merge,
        Change::Move { .. } => ChangeOp::Move,
        Change::Reinforce { .. } => ChangeOp::Reinforce,
    }
}

/// The evidence a change carries (an archival or move carries none of its own).
fn change_evidence(change: &Change, after: &MemoryDocument) -> Option<Evidence> {
    match change {
        Change::Add { entry, .. } | Change::Update { entry } | Change::Merge { entry, .. } => {
            Some(entry.evidence.clone())
        }
        Change::Reinforce { evidence, .. } => Some(evidence.clone()),
        Change::Move { id, .. } => after.find(id).map(|(_, e)| e.evidence.clone()),
        Change::Archive { .. } => None,
    }
}

fn api_evidence(evidence: Evidence) -> ApiEvidence {
    ApiEvidence {
        count: evidence.count,
        sessions: evidence.sessions,
        first_seen: evidence
            .first_seen
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        last_seen: evidence
            .last_seen
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        tasks: evidence.tasks,
        numbers: evidence.numbers,
        segment: evidence.segment,
        pattern: evidence.pattern.as_ref().and_then(crate::effect::api_pattern),
    }
}

fn core_evidence(evidence: &ApiEvidence) -> Evidence {
    Evidence {
        count: evidence.count,
        first_seen: evidence.first_seen.as_ref().map(|t| t.0),
        last_seen: evidence.last_seen.as_ref().map(|t| t.0),
        sessions: evidence.sessions.iter().take(MAX_EXAMPLE_SESSIONS).cloned().collect(),
        tasks: evidence.tasks,
        numbers: evidence.numbers.clone(),
        segment: evidence.segment.clone(),
        pattern: evidence.pattern.as_ref().and_then(crate::effect::core_pattern),
    }
}

/// Who and when, stamped on every entry a proposal writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The proposal's name.
    pub proposal: &'a str,
    pub approved_by: Option<&'a str>,
    /// A fixed instant of the proposal (its creation), so a retried apply is byte-identical.
    pub at: Timestamp,
}

/// The memory changes a proposal's `changes` stand for, read against `base`.
pub fn to_changes(
    proposed: &[ProposedChange],
    base: &MemoryDocument,
    origin: &Origin<'_>,
) -> Result<Vec<Change>, ConvertError> {
    proposed
        .iter()
        .enumerate()
        .map(|(index, change)| {
            to_change(change, base, origin).map_err(|message| ConvertError {
                index,
                op: change.op,
                message,
            })
        })
        .collect()
}

fn to_change(change: &ProposedChange, base: &MemoryDocument, origin: &Origin<'_>) -> Result<Change, String> {
    let id = match change.id.clone().filter(|id| !id.is_empty()) {
        Some(id) => id,
        // A hand-written Add may leave the id out: derive a stable one from its content.
        None if change.op == ChangeOp::Add => {
            let section = change.section.as_deref().unwrap_or("entry");
            let text = change.after.as_deref().unwrap_or_default();
            format!("{section}-{}", reverie_core::naming::short_hash(text))
        }
        None => return Err("every change but Add needs an id".into()),
    };
    let evidence = change.evidence.as_ref().map(core_evidence);
    let provenance = Some(Provenance {
        source: origin.proposal.to_string(),
        approved_by: origin.approved_by.map(str::to_string),
        at: origin.at,
        // Stamped by the store that writes the revision.
        revision: None,
        applied: None,
    });
    // Computed up front (not every op needs them); the arms that do use `?` on them.
    let text = change
        .after
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| format!("{id}: the text after the change (`after`) is required"));
    let existing = base
        .find(&id)
        .map(|(_, e)| e.clone())
        .ok_or_else(|| format!("no loaded entry has id {id}"));
    Ok(match change.op {
        ChangeOp::Add => {
            let section = change
                .section
                .clone()
                .ok_or_else(|| format!("{id}: Add needs a section"))?;
            Change::Add {
                entry: Entry {
                    id,
                    text: text?,
                    kind: kind_of_section(&section),
                    evidence: evidence.unwrap_or_default(),
                    provenance,
                    created: origin.at,
                    reinforced: None,
                    pinned: false,
                },
                section,
            }
        }
        ChangeOp::Update | ChangeOp::Merge => {
            let mut entry = existing?;
            entry.text = text?;
            if let Some(evidence) = evidence {
                entry.evidence = evidence;
            }
            entry.provenance = provenance;
            if change.op == ChangeOp::Update {
                Change::Update { entry }
            } else {
                Change::Merge {
                    entry,
                    from: change.ids.clone(),
                    at: origin.at,
                }
            }
        }
        ChangeOp::Archive => Change::Archive {
            id,
            at: origin.at,
            reason: change
                .rationale
                .clone()
                .unwrap_or_else(|| format!("archived by {}", origin.proposal)),
        },
        ChangeOp::Move => Change::Move {
            to: change
                .section
                .clone()
                .ok_or_else(|| format!("{id}: Move needs the target section"))?,
            id,
        },
        ChangeOp::Reinforce => Change::Reinforce {
            evidence: evidence.ok_or_else(|| format!("{id}: Reinforce needs evidence"))?,
            id,
            at: origin.at,
        },
    })
}

/// A proposal as a memory store receives it: its changes in reviewable form, read against the
/// memory where the write happens (the operator for a ConfigMap, the apply Job for a volume).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalUpdate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The proposal's creation: stamped on what it writes, so a retry is byte-identical.
    pub at: Timestamp,
    /// The revision the changes were computed on.
    pub base_revision: u64,
    pub changes: Vec<ProposedChange>,
}

/// Why a proposal cannot be written onto the current memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Changes touch entries changed since the base (or the base is gone): each conflict.
    Conflicted(Vec<String>),
    /// The changes are not valid against their base.
    Invalid(String),
}

/// The changes to apply to `current` for `proposal`, and the base they were rebased from (when
/// the memory moved on since). `base` is the proposal's base revision, if still kept; it is
/// only read when `current` is a later revision.
pub fn resolve(
    proposal: &ProposalUpdate,
    current_revision: u64,
    current: &MemoryDocument,
    base: Option<&MemoryDocument>,
) -> Result<(Vec<Change>, Option<u64>), Unresolved> {
    let origin = Origin {
        proposal: &proposal.name,
        approved_by: proposal.approved_by.as_deref(),
        at: proposal.at,
    };
    if current_revision == proposal.base_revision {
        let changes =
            to_changes(&proposal.changes, current, &origin).map_err(|e| Unresolved::Invalid(e.to_string()))?;
        return Ok((changes, None));
    }
    let Some(base) = base else {
        return Err(Unresolved::Conflicted(vec![format!(
            "base revision {} is no longer kept (memory is at revision {current_revision}), so the changes cannot be checked against what changed since",
            proposal.base_revision
        )]));
    };
    let changes = to_changes(&proposal.changes, base, &origin).map_err(|e| Unresolved::Invalid(e.to_string()))?;
    reverie_core::memory::rebase::rebase(base, current, &changes)
        .map(|changes| (changes, Some(proposal.base_revision)))
        .map_err(|conflicts| Unresolved::Conflicted(conflicts.iter().map(ToString::to_string).collect()))
}

/// The entry kind a new entry gets in `section` (dreams put each kind in its own section).
fn kind_of_section(section: &str) -> EntryKind {
    match section {
        "preferences" => EntryKind::Preference,
        "workflows" => EntryKind::Workflow,
        "facts" => EntryKind::Fact,
        _ => EntryKind::Lesson,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reverie_core::memory::change::apply;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry(id: &str, text: &str, count: u32) -> Entry {
        Entry {
            id: id.into(),
            text: text.into(),
            kind: EntryKind::Lesson,
            evidence: Evidence {
                count,
                first_seen: None,
                last_seen: None,
                sessions: vec!["s-1".into()],
                ..Evidence::default()
            },
            provenance: None,
            created: ts("2026-01-01T00:00:00Z"),
            reinforced: None,
            pinned: false,
        }
    }

    fn base() -> MemoryDocument {
        let mut doc = MemoryDocument::with_instructions("Be kind.", &[], ts("2026-01-01T00:00:00Z"));
        let changes = [
            Change::Add {
                section: "lessons".into(),
                entry: entry("lesson-a", "Check the account id", 3),
            },
            Change::Add {
                section: "lessons".into(),
                entry: entry("lesson-b", "Retry on 429", 4),
            },
        ];
        doc = apply(&doc, &changes).unwrap();
        doc
    }

    #[test]
    fn a_dream_proposal_round_trips_to_the_same_texts_and_sections() {
        let base = base();
        let at = ts("2026-02-01T00:00:00Z");
        let mut updated = entry("lesson-a", "Check the billing account id", 5);
        updated.created = base.find("lesson-a").unwrap().1.created;
        let changes = vec![
            Change::Add {
                section: "preferences".into(),
                entry: entry("pref-c", "Answer in French", 3),
            },
            Change::Update { entry: updated },
            Change::Archive {
                id: "lesson-b".into(),
                at,
                reason: "stale".into(),
            },
        ];
        let after = apply(&base, &changes).unwrap();
        let proposed = to_proposed(&changes, &base, &after);
        assert_eq!(proposed[0].section.as_deref(), Some("preferences"));
        assert_eq!(proposed[1].before.as_deref(), Some("Check the account id"));
        assert_eq!(proposed[1].evidence.as_ref().unwrap().count, 5);
        assert_eq!(proposed[2].after, None);
        assert_eq!(proposed[2].rationale.as_deref(), Some("stale"));

        let origin = Origin {
            proposal: "p1",
            approved_by: Some("ana"),
            at,
        };
        let back = to_changes(&proposed, &base, &origin).unwrap();
        let applied = apply(&base, &back).unwrap();
        let text = |doc: &MemoryDocument, id: &str| doc.find(id).map(|(s, e)| (s.name.clone(), e.text.clone()));
        for id in ["pref-c", "lesson-a", "lesson-b"] {
            assert_eq!(text(&applied, id), text(&after, id), "{id}");
        }
        let (_, added) = applied.find("pref-c").unwrap();
        assert_eq!(added.kind, EntryKind::Preference);
        assert_eq!(added.provenance.as_ref().unwrap().approved_by.as_deref(), Some("ana"));
        // The same proposal on the same base gives the same changes: applying is repeatable.
        assert_eq!(to_changes(&proposed, &base, &origin).unwrap(), back);
    }

    #[test]
    fn incomplete_changes_name_the_index_and_what_is_missing() {
        let base = base();
        let origin = Origin {
            proposal: "p",
            approved_by: None,
            at: ts("2026-02-01T00:00:00Z"),
        };
        let add_without_text: ProposedChange =
            serde_json::from_value(serde_json::json!({"op": "Add", "id": "x", "section": "lessons"})).unwrap();
        let err = to_changes(&[add_without_text], &base, &origin).unwrap_err();
        assert_eq!(err.index, 0);
        assert!(err.to_string().contains("`after`"), "{err}");
        let update_unknown: ProposedChange =
            serde_json::from_value(serde_json::json!({"op": "Update", "id": "nope", "after": "t"})).unwrap();
        let err = to_changes(&[update_unknown], &base, &origin).unwrap_err();
        assert!(err.to_string().contains("no loaded entry has id nope"), "{err}");
    }
}
