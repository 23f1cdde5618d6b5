//! Benchmarks of the memory core on generated, realistic memories: canonical form, digest and
//! rendering of a 200k-token memory (the size compaction exists to prevent), apply and diff on
//! 10k entries, rebase of 1k changes, and the whole apply path of a 50k-token memory.
//!
//! Run: `cargo bench --bench memory -- --warm-up-time 1 --measurement-time 3`.
//! Results are recorded in `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use reverie::memory::codec::digest_of;
use reverie::memory::{
    ArchivedEntry, Change, Entry, EntryKind, Evidence, MemoryDocument, Provenance, apply, diff, digest,
    estimate_tokens, from_yaml, loaded_tokens, rebase, render_markdown, to_yaml,
};

const AGENT: &str = "support-bot";

/// Deterministic generator (splitmix64): every run benchmarks the same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

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

fn time(second: u64) -> Timestamp {
    Timestamp::from_second(1_790_000_000 + second as i64).expect("in range")
}

fn sentence(rng: &mut Rng) -> String {
    let mut text = rng.pick(&SENTENCES).to_string();
    while let Some(start) = text.find('{') {
        let end = start + 2;
        let fill = match &text[start + 1..end] {
            "n" => (rng.below(9000) + 2).to_string(),
            "h" => rng.hex(4),
            _ => rng.pick(&WORDS).to_string(),
        };
        text.replace_range(start..=end, &fill);
    }
    text
}

/// An entry of one to three sentences with evidence and provenance, as dreaming leaves them.
fn entry(rng: &mut Rng, id: String, kind: EntryKind) -> Entry {
    let mut text = sentence(rng);
    for _ in 0..rng.below(3) {
        text.push(' ');
        text.push_str(&sentence(rng));
    }
    let created = rng.next() % 10_000_000;
    Entry {
        id,
        text,
        kind,
        evidence: Evidence {
            count: 3 + rng.below(20) as u32,
            first_seen: Some(time(created)),
            last_seen: Some(time(created + 86_400)),
            sessions: (0..3).map(|_| format!("s-{}", rng.hex(4))).collect(),
            ..Evidence::default()
        },
        provenance: Some(Provenance {
            source: format!("dream/{AGENT}-{}", rng.below(500)),
            approved_by: Some("alice@example.com".into()),
            at: time(created + 90_000),
        }),
        created: time(created),
        reinforced: Some(time(created + 172_800)),
        pinned: rng.below(50) == 0,
    }
}

/// A memory of `entries` loaded entries (about 50 tokens each) plus a tenth as many archived.
fn memory(entries: usize, seed: u64) -> MemoryDocument {
    let mut rng = Rng(seed);
    let instructions = (0..8).map(|_| sentence(&mut rng)).collect::<Vec<_>>().join(" ");
    let mut doc = MemoryDocument::with_instructions(&instructions, &["safety".into()], time(0));
    for i in 0..entries {
        let (section, kind) = SECTIONS[rng.below(SECTIONS.len())];
        let id = format!("{}-{i}{}", section.trim_end_matches('s'), rng.hex(6));
        let entry = entry(&mut rng, id, kind);
        doc.section_mut(section).entries.push(entry);
    }
    for i in 0..entries / 10 {
        let id = format!("old-{i}{}", rng.hex(6));
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

/// A realistic proposal of `count` changes on distinct entries: updates, reinforcements,
/// archivals, moves, merges and additions, in the proportions a dream produces them.
fn proposal(doc: &MemoryDocument, count: usize, seed: u64, prefix: &str) -> Vec<Change> {
    let mut rng = Rng(seed);
    let mut editable: Vec<&Entry> = doc
        .entries()
        .filter(|(section, e)| !doc.is_protected(section) && !e.pinned)
        .map(|(_, e)| e)
        .collect();
    let mut changes = Vec::with_capacity(count);
    for n in 0..count {
        let take = |rng: &mut Rng, editable: &mut Vec<&Entry>| editable.swap_remove(rng.below(editable.len())).clone();
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

/// The same document with every section's entries in reverse: what `normalize` has to sort.
fn shuffled(doc: &MemoryDocument) -> MemoryDocument {
    let mut doc = doc.clone();
    doc.sections.reverse();
    for section in &mut doc.sections {
        section.entries.reverse();
    }
    doc.archive.reverse();
    doc
}

fn canonical_form_of_a_200k_token_memory(c: &mut Criterion) {
    let doc = memory(3_600, 1);
    let yaml = to_yaml(&doc);
    let markdown = render_markdown(AGENT, &doc);
    eprintln!(
        "200k memory: {} entries, {} archived, {} tokens loaded, {} bytes of YAML, {} bytes of Markdown",
        doc.entry_count(),
        doc.archive.len(),
        loaded_tokens(AGENT, &doc),
        yaml.len(),
        markdown.len()
    );
    let unsorted = shuffled(&doc);
    let mut group = c.benchmark_group("memory_200k_tokens");
    group.bench_function("normalize_and_to_yaml", |b| {
        b.iter_batched(
            || unsorted.clone(),
            |mut doc| {
                doc.normalize();
                to_yaml(&doc)
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("digest_of_yaml", |b| b.iter(|| digest_of(black_box(&yaml))));
    group.bench_function("render_markdown", |b| {
        b.iter(|| render_markdown(AGENT, black_box(&doc)))
    });
    group.bench_function("estimate_tokens", |b| b.iter(|| estimate_tokens(black_box(&markdown))));
    group.bench_function("canonicalise_digest_render", |b| {
        b.iter_batched(
            || unsorted.clone(),
            |mut doc| {
                doc.normalize();
                let digest = digest_of(&to_yaml(&doc));
                (digest, render_markdown(AGENT, &doc))
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn apply_and_diff_on_10k_entries(c: &mut Criterion) {
    let doc = memory(10_000, 2);
    let changes = proposal(&doc, 500, 3, "new");
    let after = apply(&doc, &changes).expect("the proposal applies");
    assert_eq!(
        apply(&doc, &diff(&doc, &after).expect("expressible")).as_ref(),
        Ok(&after)
    );
    let mut group = c.benchmark_group("memory_10k_entries");
    group.bench_function("apply_500_changes", |b| {
        b.iter(|| apply(black_box(&doc), black_box(&changes)))
    });
    // For scale: apply clones every entry once, since it returns a new document.
    group.bench_function("clone", |b| b.iter(|| black_box(&doc).clone()));
    group.bench_function("diff", |b| b.iter(|| diff(black_box(&doc), black_box(&after))));
    group.finish();
}

fn rebase_of_1k_changes(c: &mut Criterion) {
    let base = memory(10_000, 4);
    let concurrent = proposal(&base, 200, 5, "theirs");
    let current = apply(&base, &concurrent).expect("the concurrent proposal applies");
    let touched: std::collections::HashSet<&str> = concurrent.iter().flat_map(Change::touched_ids).collect();
    let ours: Vec<Change> = proposal(&base, 1_300, 6, "ours")
        .into_iter()
        .filter(|change| change.touched_ids().all(|id| !touched.contains(id)))
        .take(1_000)
        .collect();
    assert_eq!(ours.len(), 1_000);
    assert!(rebase(&base, &current, &ours).is_ok(), "disjoint proposals rebase");
    c.bench_function("rebase_1k_changes_on_10k_entries", |b| {
        b.iter(|| rebase(black_box(&base), black_box(&current), black_box(&ours)))
    });
}

fn whole_apply_path_of_a_50k_token_memory(c: &mut Criterion) {
    let doc = memory(900, 7);
    let yaml = to_yaml(&doc);
    let changes = proposal(&doc, 20, 8, "dream");
    let next = apply(&doc, &changes).expect("applies");
    eprintln!(
        "50k memory: {} tokens loaded, {} bytes of YAML",
        loaded_tokens(AGENT, &doc),
        yaml.len()
    );
    let mut group = c.benchmark_group("memory_50k_tokens");
    group.bench_function("whole_apply_path", |b| {
        b.iter(|| {
            let current = from_yaml(black_box(&yaml)).expect("valid");
            let mut next = apply(&current, black_box(&changes)).expect("applies");
            next.normalize();
            let yaml = to_yaml(&next);
            let digest = digest_of(&yaml);
            let markdown = render_markdown(AGENT, &next);
            // What `loaded_tokens` computes, on the Markdown already rendered (as the store does).
            let tokens = estimate_tokens(&markdown);
            (digest, markdown, tokens)
        })
    });
    // The same path step by step.
    group.bench_function("from_yaml", |b| b.iter(|| from_yaml(black_box(&yaml))));
    group.bench_function("apply_20_changes", |b| {
        b.iter(|| apply(black_box(&doc), black_box(&changes)))
    });
    group.bench_function("to_yaml_and_digest", |b| b.iter(|| digest(black_box(&next))));
    group.bench_function("render_and_loaded_tokens", |b| {
        b.iter(|| {
            let markdown = render_markdown(AGENT, black_box(&next));
            (estimate_tokens(&markdown), markdown)
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    canonical_form_of_a_200k_token_memory,
    apply_and_diff_on_10k_entries,
    rebase_of_1k_changes,
    whole_apply_path_of_a_50k_token_memory
);
criterion_main!(benches);
