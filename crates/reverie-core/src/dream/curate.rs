//! Curation: verified lessons and the current memory in, the changes of a proposal out.
//!
//! Reinforce what recurs, add what is new, merge near-duplicates, move entries to the section
//! their kind belongs in, archive what went stale, and compact to the token budget by archiving
//! the lowest-value entries. Nothing is deleted; protected sections and pinned entries are never
//! touched (and `memory::change::apply`, which checks the result, would refuse it anyway).

use std::collections::{BTreeSet, HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};

use super::effect::{Effects, LessonEffect, Verdict};
use super::model::{Candidate, DreamSettings, Lesson, PatternKind};
use super::normalize::{content_words, jaccard};
use crate::memory::change::{ApplyError, Change, apply};
use crate::memory::document::{CORE, Entry, EntryKind, Evidence, MAX_EXAMPLE_SESSIONS, MemoryDocument, Provenance};
use crate::memory::tokens::{estimate_tokens, loaded_tokens};

/// A lesson reinforces an existing entry of its section this similar to it.
const SAME_ENTRY: f64 = 0.6;
/// Two entries of one section this similar are merged.
const DUPLICATES: f64 = 0.8;

/// The outcome of curation.
#[derive(Clone, Debug, PartialEq)]
pub struct Curated {
    pub changes: Vec<Change>,
    /// The memory after the changes.
    pub result: MemoryDocument,
    /// Estimated loaded tokens before and after.
    pub tokens_before: usize,
    pub tokens_after: usize,
    /// Entries archived to fit `maxTokens`.
    pub compacted: usize,
    /// Sentences for the proposal summary (compaction, budget problems).
    pub notes: Vec<String>,
}

fn evidence_of(lesson: &Lesson, candidates: &HashMap<&str, &Candidate>) -> Evidence {
    let cited: Vec<&Candidate> = lesson
        .candidates
        .iter()
        .filter_map(|id| candidates.get(id.as_str()).copied())
        .collect();
    let strongest = cited.iter().max_by_key(|c| c.evidence.count);
    Evidence {
        // Counts of different patterns may share sessions: the strongest is an honest floor.
        count: strongest.map_or(0, |c| c.evidence.count),
        first_seen: cited.iter().filter_map(|c| c.evidence.first_seen).min(),
        last_seen: cited.iter().filter_map(|c| c.evidence.last_seen).max(),
        sessions: strongest
            .map(|c| c.evidence.sessions.iter().take(MAX_EXAMPLE_SESSIONS).cloned().collect())
            .unwrap_or_default(),
        tasks: strongest.and_then(|c| c.strata),
        numbers: strongest.and_then(|c| c.numbers.clone()),
        segment: strongest.and_then(|c| c.segment.clone()),
        pattern: strongest.and_then(|c| c.pattern.clone()),
    }
}

fn entry_kind(lesson: &Lesson, candidates: &HashMap<&str, &Candidate>) -> EntryKind {
    lesson
        .candidates
        .iter()
        .find_map(|id| candidates.get(id.as_str()))
        .map_or(EntryKind::Lesson, |c| c.kind.entry_kind())
}

/// Stable id for a new entry: its kind and a hash of the candidate keys behind it, so the same
/// pattern proposed by two passes is the same entry.
fn entry_id(kind: EntryKind, lesson: &Lesson, candidates: &HashMap<&str, &Candidate>) -> String {
    let mut keys: Vec<&str> = lesson
        .candidates
        .iter()
        .filter_map(|id| candidates.get(id.as_str()).map(|c| c.key.as_str()))
        .collect();
    keys.sort_unstable();
    let prefix = match kind {
        EntryKind::Instruction => "instruction",
        EntryKind::Lesson => "lesson",
        EntryKind::Preference => "preference",
        EntryKind::Workflow => "workflow",
        EntryKind::Fact => "fact",
    };
    format!("{prefix}-{}", crate::naming::short_hash(&keys.join("\u{0}")))
}

/// Live entries dreaming may change: not pinned, not in a protected section.
fn curatable(memory: &MemoryDocument) -> impl Iterator<Item = (&str, &Entry)> {
    memory
        .entries()
        .filter(|(section, entry)| !entry.pinned && !memory.is_protected(section))
}

fn merge_evidence(old: &Evidence, new: &Evidence) -> Evidence {
    Evidence {
        count: new.count.max(old.count),
        first_seen: old.first_seen.into_iter().chain(new.first_seen).min(),
        last_seen: old.last_seen.into_iter().chain(new.last_seen).max(),
        sessions: if new.sessions.is_empty() {
            old.sessions.clone()
        } else {
            new.sessions.clone()
        },
        // The latest pass's numbers describe the latest evidence.
        tasks: new.tasks.or(old.tasks),
        numbers: new.numbers.clone().or_else(|| old.numbers.clone()),
        segment: new.segment.clone().or_else(|| old.segment.clone()),
        pattern: new.pattern.clone().or_else(|| old.pattern.clone()),
    }
}

/// Archives the lessons whose effect says they do not help: the regressed first (outcomes got
/// worse), then those without effect after `archive_after` sessions. The numbers are the
/// rationale. Returns the ids archived: no lesson of this pass reinforces or re-adds them.
fn effect_changes(
    memory: &MemoryDocument,
    effects: &Effects,
    settings: &DreamSettings,
    changes: &mut Vec<Change>,
) -> HashSet<String> {
    let archive_after = settings.effect.archive_after;
    let curatable: HashSet<&str> = curatable(memory).map(|(_, e)| e.id.as_str()).collect();
    let retire = |effect: &&LessonEffect| match effect.verdict {
        Verdict::Regressed => true,
        Verdict::NoEffect => archive_after > 0 && effect.after.sessions >= archive_after,
        Verdict::Effective | Verdict::TooEarly => false,
    };
    let mut retiring: Vec<&LessonEffect> = effects
        .lessons
        .iter()
        .filter(|e| curatable.contains(e.id.as_str()))
        .filter(retire)
        .collect();
    // Regressed first: the reviewer reads the lesson that hurts before anything else.
    retiring.sort_by_key(|e| e.verdict != Verdict::Regressed);
    let mut retired = HashSet::new();
    for effect in retiring {
        changes.push(Change::Archive {
            id: effect.id.clone(),
            at: settings.now,
            reason: format!("{}: {}", effect.verdict.as_str(), effect.numbers()),
        });
        retired.insert(effect.id.clone());
    }
    retired
}

/// Turns lessons into Reinforce and Add changes. Returns the ids touched (`retired` included:
/// a lesson this pass archives for its effect is not reinforced or added back).
fn lesson_changes(
    memory: &MemoryDocument,
    lessons: &[Lesson],
    candidates: &HashMap<&str, &Candidate>,
    now: Timestamp,
    retired: HashSet<String>,
    changes: &mut Vec<Change>,
) -> HashSet<String> {
    let mut touched = retired;
    for lesson in lessons {
        let evidence = evidence_of(lesson, candidates);
        let kind = entry_kind(lesson, candidates);
        let id = entry_id(kind, lesson, candidates);
        let words = content_words(&lesson.text);
        let existing = memory.find(&id).map(|(_, e)| e).or_else(|| {
            memory
                .section(&lesson.section)
                .into_iter()
                .flat_map(|s| &s.entries)
                .filter(|e| !e.pinned)
                .map(|e| (e, jaccard(&content_words(&e.text), &words)))
                .filter(|(_, similarity)| *similarity >= SAME_ENTRY)
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.id.cmp(&a.0.id)))
                .map(|(e, _)| e)
        });
        match existing {
            Some(entry)
                if memory
                    .find(&entry.id)
                    .is_some_and(|(s, _)| memory.is_protected(&s.name)) => {}
            Some(entry) => {
                if touched.insert(entry.id.clone()) {
                    changes.push(Change::Reinforce {
                        id: entry.id.clone(),
                        evidence: merge_evidence(&entry.evidence, &evidence),
                        at: now,
                    });
                }
            }
            None => {
                if memory.is_protected(&lesson.section) || !touched.insert(id.clone()) {
                    continue;
                }
                changes.push(Change::Add {
                    section: lesson.section.clone(),
                    entry: Entry {
                        id,
                        text: lesson.text.clone(),
                        kind,
                        evidence,
                        provenance: Some(Provenance {
                            source: "dream".into(),
                            approved_by: None,
                            at: now,
                            revision: None,
                            applied: None,
                        }),
                        created: now,
                        reinforced: Some(now),
                        pinned: false,
                    },
                });
            }
        }
    }
    touched
}

/// Merges near-duplicate entries of one section into the better-backed one.
fn merge_changes(memory: &MemoryDocument, touched: &mut HashSet<String>, now: Timestamp, changes: &mut Vec<Change>) {
    let entries: Vec<(&str, &Entry, BTreeSet<String>)> = curatable(memory)
        .filter(|(section, _)| *section != CORE)
        .map(|(section, entry)| (section, entry, content_words(&entry.text)))
        .collect();
    for (i, (section, keep, words)) in entries.iter().enumerate() {
        if touched.contains(&keep.id) {
            continue;
        }
        let duplicates: Vec<&Entry> = entries[i + 1..]
            .iter()
            .filter(|(s, other, w)| s == section && !touched.contains(&other.id) && jaccard(words, w) >= DUPLICATES)
            .map(|(_, other, _)| *other)
            .collect();
        if duplicates.is_empty() {
            continue;
        }
        let mut merged = (*keep).clone();
        for duplicate in &duplicates {
            merged.evidence = merge_evidence(&merged.evidence, &duplicate.evidence);
            touched.insert(duplicate.id.clone());
        }
        merged.reinforced = Some(now);
        touched.insert(keep.id.clone());
        changes.push(Change::Merge {
            entry: merged,
            from: duplicates.iter().map(|d| d.id.clone()).collect(),
            at: now,
        });
    }
}

/// Moves entries to the section their kind belongs in, when they sit in another standard one.
fn move_changes(memory: &MemoryDocument, touched: &mut HashSet<String>, changes: &mut Vec<Change>) {
    for (section, entry) in curatable(memory) {
        let home = entry.kind.default_section();
        let standard = crate::memory::document::STANDARD_SECTIONS.contains(&section);
        if standard && section != home && home != CORE && !memory.is_protected(home) && touched.insert(entry.id.clone())
        {
            changes.push(Change::Move {
                id: entry.id.clone(),
                to: home.to_string(),
            });
        }
    }
}

/// Archives entries no pass has reinforced for `stale_after`, except lessons measured
/// effective: their pattern stopped recurring because of them, and would come back without.
fn stale_changes(
    memory: &MemoryDocument,
    touched: &HashSet<String>,
    effects: &Effects,
    settings: &DreamSettings,
    changes: &mut Vec<Change>,
) {
    let Ok(stale_after) = SignedDuration::try_from(settings.stale_after) else {
        return;
    };
    let Ok(cutoff) = settings.now.checked_sub(stale_after) else {
        return;
    };
    for (_, entry) in curatable(memory) {
        let last = entry.reinforced.unwrap_or(entry.created);
        let effective = effects.get(&entry.id).is_some_and(|e| e.verdict == Verdict::Effective);
        if entry.kind != EntryKind::Instruction && !touched.contains(&entry.id) && !effective && last < cutoff {
            changes.push(Change::Archive {
                id: entry.id.clone(),
                at: settings.now,
                reason: format!("stale: not reinforced since {}", last.strftime("%Y-%m-%d")),
            });
        }
    }
}

/// How much an entry is worth keeping loaded: evidence, discounted by age (a 30-day scale).
fn value(entry: &Entry, now: Timestamp) -> f64 {
    let last = entry.reinforced.unwrap_or(entry.created);
    let age_days = (now.as_second() - last.as_second()).max(0) as f64 / 86_400.0;
    f64::from(entry.evidence.count.max(1)) * (-age_days / 30.0).exp()
}

/// Archives the lowest-value curatable entries until the loaded memory fits `max_tokens`.
fn compact(
    result: &MemoryDocument,
    agent: &str,
    settings: &DreamSettings,
    changes: &mut Vec<Change>,
) -> (usize, Vec<String>) {
    let budget = settings.max_tokens as usize;
    let mut tokens = loaded_tokens(agent, result);
    if tokens <= budget {
        return (0, Vec::new());
    }
    let mut ranked: Vec<(&str, &Entry)> = curatable(result).filter(|(s, _)| *s != CORE).collect();
    ranked.sort_by(|a, b| {
        value(a.1, settings.now)
            .total_cmp(&value(b.1, settings.now))
            .then_with(|| a.1.id.cmp(&b.1.id))
    });
    let mut archived = 0;
    for (_, entry) in ranked {
        if tokens <= budget {
            break;
        }
        // The entry's rendered line: "- text _(seen in N sessions)_".
        tokens = tokens.saturating_sub(estimate_tokens(&entry.text) + 8);
        changes.push(Change::Archive {
            id: entry.id.clone(),
            at: settings.now,
            reason: format!("compacted to fit maxTokens {budget}"),
        });
        archived += 1;
    }
    let mut notes = vec![format!(
        "Compacted the memory to fit its {budget}-token budget by archiving the {archived} lowest-value entries."
    )];
    if tokens > budget {
        notes.push(format!(
            "The protected and pinned entries alone need about {tokens} tokens, over the {budget}-token budget."
        ));
    }
    (archived, notes)
}

/// Curates `memory` with `lessons` (already verified against `candidates`) and the measured
/// `effects` of the lessons it holds.
pub fn curate(
    agent: &str,
    memory: &MemoryDocument,
    lessons: &[Lesson],
    candidates: &[Candidate],
    effects: &Effects,
    settings: &DreamSettings,
) -> Result<Curated, ApplyError> {
    let by_id: HashMap<&str, &Candidate> = candidates.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut changes = Vec::new();
    let retired = effect_changes(memory, effects, settings, &mut changes);
    let mut touched = lesson_changes(memory, lessons, &by_id, settings.now, retired, &mut changes);
    merge_changes(memory, &mut touched, settings.now, &mut changes);
    move_changes(memory, &mut touched, &mut changes);
    stale_changes(memory, &touched, effects, settings, &mut changes);
    let mut result = apply(memory, &changes)?;
    let (compacted, notes) = compact(&result, agent, settings, &mut changes);
    if compacted > 0 {
        result = apply(memory, &changes)?;
    }
    Ok(Curated {
        tokens_before: loaded_tokens(agent, memory),
        tokens_after: loaded_tokens(agent, &result),
        changes,
        result,
        compacted,
        notes,
    })
}

/// The section a lesson of `kind` goes to.
pub fn section_for(kind: PatternKind) -> &'static str {
    kind.entry_kind().default_section()
}
