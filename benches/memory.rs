//! Benchmarks of the memory core on generated, realistic memories: canonical form, digest and
//! rendering of a 200k-token memory (the size compaction exists to prevent), apply and diff on
//! 10k entries, rebase of 1k changes, and the whole apply path of a 50k-token memory.
//!
//! The documents and proposals come from `reverie_dev::memories` (deterministic seeds).
//!
//! Run: `cargo bench --bench memory -- --warm-up-time 1 --measurement-time 3`.
//! Results are recorded in `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use reverie::memory::codec::digest_of;
use reverie::memory::{
    Change, MemoryDocument, apply, diff, digest, estimate_tokens, from_yaml, loaded_tokens, rebase, render_markdown,
    to_yaml,
};
use reverie_dev::memories::{AGENT, memory, proposal};

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
