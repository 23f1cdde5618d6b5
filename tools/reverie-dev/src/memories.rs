//! Synthetic memories and proposals of realistic shape, for the benchmarks.
//!
//! - [`memory`]: entries of one to three sentences of memory text (ids, numbers, commands, code,
//!   a little non-ASCII), each with evidence (three example sessions), provenance and
//!   timestamps; one entry in fifty pinned; `safety` protected; an archive a tenth the size of
//!   the loaded memory.
//! - [`proposal`]: changes on such a memory, mixed the way a dream produces them.
//! - [`lessons_of_tokens`]: a memory of plain lessons of a given size, what curation starts from.
//!
//! Deterministic for a seed (the core's SplitMix64), so every run measures the same documents.

use jiff::{SignedDuration, Timestamp};

use reverie_core::memory::{
    ArchivedEntry, Change, Entry, EntryKind, Evidence, MemoryDocument, Provenance, loaded_tokens,
};
use reverie_core::rng::Rng;

/// The agent the generated entries' provenance names.
pub const AGENT: &str = "support-bot";

const SENTENCES: [&str; 12] = [
    "When lookup_account fails with \"account {n} not found\", look the customer up by billing id instead of the email.",
    "Never offer a refund above ${n} without a team lead's approval; cite the policy in ticket s-{h}.",
    "Run `kubectl rollout status deploy/{w} -n prod` before announcing a release; it took {n}s last time.",
    "The staging cluster uses {n} replicas of reverie-operator v0.{n}.2 behind https://staging.internal:6443.",
    "Please don't schedule calls before 10am in the customer's time zone; they asked in {n} sessions.",
    "In `src/{w}/mod.rs:{n}` the function returns `Result<Vec<Entry>, ApplyError>`; propagate errors with `?`.",
    "Summaries start with the decision, then the open questions, then who owns each next step.",
    "Revenue comes from `analytics.{w}`; filter on status = 'paid' and report absolute numbers next to percentages.",
    "If two sources disagree about the {w}, say so and name both instead of silently picking one.",
    "Certificates expire every 90 days; rotate them with `make rotate-certs ENV={w}` a week ahead.",
    "Long answers were rated lower in {n} reviewed sessions; keep replies under five sentences unless asked.",
    "Customers in München prefer formal German and prices like 1.234,{n} € with a comma.",
];
/// What an agent replies; `{n}` is a number.
const REPLY_SENTENCES: [&str; 16] = [
    "I looked up the account and found the subscription you mentioned.",
    "The invoice {n} was generated twice because the payment retry ran after a timeout.",
    "Here is what I found in the documentation for this case.",
    "I have created ticket T-{n} and assigned it to the billing team.",
    "Before I cancel the plan, could you confirm that you want to keep your data export?",
    "The deployment failed because the readiness probe on port 8080 timed out after {n}s.",
    "To fix this, update the `values.yaml` so that `replicas: 3` and re-run the rollout.",
    "According to the policy, refunds above $200 need a team lead's approval.",
    "I could not find an account with that email; the billing id is what the system expects.",
    "Revenue for the quarter was 1.2M, up {n}% from the previous one.",
    "Let me check the logs of the last {n} minutes.",
    "The customer prefers \"formal\" German, so I used Sie throughout.",
    "Summary: the decision is made, two questions remain open, and Alex owns the follow-up.",
    "I'll schedule the call for 10:30 in your time zone.",
    "The query returned {n} rows; the top three are listed below.",
    "Nothing else is needed from your side — the change is live.",
];
const WORDS: [&str; 8] = [
    "invoice", "billing", "checkout", "ingress", "memory", "renewal", "pipeline", "quota",
];
const SECTIONS: [(&str, EntryKind); 5] = [
    ("lessons", EntryKind::Lesson),
    ("preferences", EntryKind::Preference),
    ("workflows", EntryKind::Workflow),
    ("facts", EntryKind::Fact),
    ("team-notes", EntryKind::Lesson),
];

/// A memory of `entries` loaded entries (about 50 tokens each) plus a tenth as many archived.
pub fn memory(entries: usize, seed: u64) -> MemoryDocument {
    let mut rng = Rng::new(seed);
    let mut doc = instructions_only(&mut rng);
    for i in 0..entries {
        add_entry(&mut rng, &mut doc, i);
    }
    for i in 0..entries / 10 {
        let id = format!("old-{i}{}", hex(&mut rng, 6));
        let mut archived = entry(&mut rng, id, EntryKind::Lesson);
        archived.pinned = false;
        doc.archive.push(ArchivedEntry {
            entry: archived,
            section: "lessons".into(),
            archived: time(20_000_000 + i as u64),
            reason: "stale".into(),
        });
    }
    doc.normalize();
    doc
}

/// A memory of lessons only whose `MEMORY.md` for `agent` prices at least `tokens` (what
/// `spec.memory.maxTokens` budgets): one or two sentences of an agent's replies each, seen in
/// 1–20 sessions over the year before 2026-11-20, nothing pinned, protected or archived. What
/// compaction starts from: the sentences are distinct enough that curation archives rather
/// than merges.
pub fn lessons_of_tokens(agent: &str, tokens: usize, seed: u64) -> MemoryDocument {
    let start: Timestamp = "2025-11-20T00:00:00Z".parse().expect("valid");
    let mut doc = MemoryDocument::with_instructions("Help customers with billing questions.", &[], start);
    let mut rng = Rng::new(seed);
    let mut added = 0;
    while loaded_tokens(agent, &doc) < tokens {
        // Pricing renders the whole memory: add entries in batches between two looks.
        for _ in 0..200 {
            let created = start + SignedDuration::from_hours(rng.below(24 * 360) as i64);
            let section = *rng.pick(&["lessons", "preferences", "workflows", "facts"]);
            doc.section_mut(section).entries.push(Entry {
                id: format!("entry-{added}"),
                text: reply_sentences(&mut rng),
                kind: EntryKind::Lesson,
                evidence: Evidence {
                    count: 1 + rng.below(20) as u32,
                    first_seen: Some(created),
                    last_seen: Some(created),
                    sessions: vec![format!("s-{added}")],
                    ..Evidence::default()
                },
                provenance: None,
                created,
                reinforced: Some(created),
                pinned: false,
            });
            added += 1;
        }
    }
    doc.normalize();
    doc
}

/// A realistic proposal of `count` changes on distinct entries of `doc`: 30% Reinforce, 20%
/// Update, 10% Archive, 10% Move, 10% Merge, 20% Add (ids of added entries start with
/// `prefix`).
pub fn proposal(doc: &MemoryDocument, count: usize, seed: u64, prefix: &str) -> Vec<Change> {
    let mut rng = Rng::new(seed);
    let mut editable: Vec<&Entry> = doc
        .entries()
        .filter(|(section, e)| !doc.is_protected(section) && !e.pinned)
        .map(|(_, e)| e)
        .collect();
    let mut changes = Vec::with_capacity(count);
    for n in 0..count {
        let take = |rng: &mut Rng, editable: &mut Vec<&Entry>| {
            editable.swap_remove(rng.below(editable.len() as u64) as usize).clone()
        };
        let change = match n % 10 {
            0..=2 => Change::Reinforce {
                id: take(&mut rng, &mut editable).id,
                evidence: Evidence {
                    count: 30,
                    ..Evidence::default()
                },
                at: time(30_000_000),
            },
            3 | 4 => Change::Update {
                entry: Entry {
                    text: sentence(&mut rng),
                    ..take(&mut rng, &mut editable)
                },
            },
            5 => Change::Archive {
                id: take(&mut rng, &mut editable).id,
                at: time(30_000_000),
                reason: "stale".into(),
            },
            6 => {
                let entry = take(&mut rng, &mut editable);
                let current = doc.find(&entry.id).map(|(s, _)| s.name.as_str());
                let to = if current == Some("facts") { "lessons" } else { "facts" };
                Change::Move {
                    id: entry.id,
                    to: to.into(),
                }
            }
            7 => Change::Merge {
                entry: take(&mut rng, &mut editable),
                from: vec![take(&mut rng, &mut editable).id],
                at: time(30_000_000),
            },
            _ => Change::Add {
                section: "lessons".into(),
                entry: {
                    let mut fresh = entry(&mut rng, format!("{prefix}-{n}"), EntryKind::Lesson);
                    fresh.pinned = false;
                    fresh
                },
            },
        };
        changes.push(change);
    }
    changes
}

/// The instant `second` seconds after the generated memories' epoch (2026-09-21).
fn time(second: u64) -> Timestamp {
    Timestamp::from_second(1_790_000_000 + second as i64).expect("in range")
}

/// Eight sentences of instructions in a protected `safety` section, no entries yet.
fn instructions_only(rng: &mut Rng) -> MemoryDocument {
    let instructions = (0..8).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ");
    MemoryDocument::with_instructions(&instructions, &["safety".into()], time(0))
}

/// Adds the `index`th entry to a random section.
fn add_entry(rng: &mut Rng, doc: &mut MemoryDocument, index: usize) {
    let (section, kind) = *rng.pick(&SECTIONS);
    let id = format!("{}-{index}{}", section.trim_end_matches('s'), hex(rng, 6));
    let entry = entry(rng, id, kind);
    doc.section_mut(section).entries.push(entry);
}

/// An entry of one to three sentences with evidence and provenance, as dreaming leaves them.
fn entry(rng: &mut Rng, id: String, kind: EntryKind) -> Entry {
    let mut text = sentence(rng);
    for _ in 0..rng.below(3) {
        text.push(' ');
        text.push_str(&sentence(rng));
    }
    let created = rng.below(10_000_000);
    Entry {
        id,
        text,
        kind,
        evidence: Evidence {
            count: 3 + rng.below(20) as u32,
            first_seen: Some(time(created)),
            last_seen: Some(time(created + 86_400)),
            sessions: (0..3).map(|_| format!("s-{}", hex(rng, 4))).collect(),
            ..Evidence::default()
        },
        provenance: Some(Provenance {
            source: format!("dream/{AGENT}-{}", rng.below(500)),
            approved_by: Some("alice@example.com".into()),
            at: time(created + 90_000),
            revision: None,
            applied: None,
        }),
        created: time(created),
        reinforced: Some(time(created + 172_800)),
        pinned: rng.below(50) == 0,
    }
}

fn sentence(rng: &mut Rng) -> String {
    let mut text = rng.pick(&SENTENCES).to_string();
    while let Some(start) = text.find('{') {
        let end = start + 2;
        let fill = match &text[start + 1..end] {
            "n" => (rng.below(9000) + 2).to_string(),
            "h" => hex(rng, 4),
            _ => rng.pick(&WORDS).to_string(),
        };
        text.replace_range(start..=end, &fill);
    }
    text
}

/// One or two reply sentences, sometimes split into paragraphs.
fn reply_sentences(rng: &mut Rng) -> String {
    let mut text = String::new();
    for i in 0..1 + rng.below(2) {
        if i > 0 {
            text.push_str(if rng.chance(0.15) { "\n\n" } else { " " });
        }
        let template = rng.pick(&REPLY_SENTENCES);
        text.push_str(&template.replace("{n}", &(rng.below(90_000) + 100).to_string()));
    }
    text
}

fn hex(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_memory_and_its_proposal_applies() {
        let doc = memory(300, 1);
        assert_eq!(doc, memory(300, 1));
        assert_eq!(doc.entry_count(), 301, "300 entries and the instructions");
        assert_eq!(doc.archive.len(), 30);
        let changes = proposal(&doc, 20, 2, "new");
        assert!(reverie_core::memory::apply(&doc, &changes).is_ok());
    }

    #[test]
    fn a_memory_of_lessons_reaches_its_size() {
        let doc = lessons_of_tokens("bench", 5_000, 3);
        assert!(loaded_tokens("bench", &doc) >= 5_000);
    }
}
