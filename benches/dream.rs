//! Dream engine benchmarks on a generated corpus of realistic transcripts (see docs/benchmarks.md).
//!
//! - `session_reading/parse_only_value`: the baseline. The same files, the same line splitting,
//!   each line parsed into a `serde_json::Value`: what "just parsing the JSON" costs.
//! - `session_reading/stream_count`: `sessions::stream` with a visitor that counts records.
//! - `session_discovery/discover`: finding and selecting the sessions (first lines only).
//!
//! The corpus is generated once per run into a temporary directory (removed at the end), at
//! `REVERIE_BENCH_CORPUS_MB` megabytes (default 64). Run:
//! `cargo bench --bench dream -- --warm-up-time 1 --measurement-time 5`.
//!
//! On Linux the bench also prints the peak resident memory of the streaming benchmark alone
//! (`VmHWM` after resetting it through `/proc/self/clear_refs`), so that memory can be compared
//! across corpus sizes.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use reverie::dream::model::{DreamSettings, ReadStats, Record, SessionMeta, SessionVisitor};
use reverie::dream::sessions::{Selection, discover, stream};
use serde_json::json;

const DEFAULT_CORPUS_MB: u64 = 64;

/// Deterministic generator (splitmix64): every run benchmarks the same corpus.
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

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const AGENTS: [&str; 4] = ["support-bot", "billing-assistant", "release-helper", "research-analyst"];
const TOOLS: [&str; 8] = [
    "lookup_account",
    "search_docs",
    "create_ticket",
    "update_subscription",
    "run_query",
    "send_email",
    "kubectl",
    "read_file",
];
const USER_SENTENCES: [&str; 14] = [
    "I want to cancel my plan, it is too expensive for us right now.",
    "Can you check why invoice {n} was charged twice?",
    "Please never schedule calls before 10am, I have told you this before.",
    "The dashboard shows \"error 502\" again since this morning.",
    "Always answer in German when the customer writes in German.",
    "My email is jane.doe{n}@example.com and the account id is {n}.",
    "Why did the deploy of v1.{n}.2 fail? It worked yesterday.",
    "Prefer short answers — bullet points are fine.",
    "Could you summarise the last three tickets for the billing team?",
    "Don't refund more than $200 without asking me first.",
    "Ich möchte meine Rechnung über 1.234,56 € prüfen lassen.",
    "Run the quarterly revenue report and compare it with Q{n}.",
    "The export has a broken path: C:\\Users\\data\\export_{n}.csv",
    "Thanks, that solved it 🎉",
];
const ASSISTANT_SENTENCES: [&str; 16] = [
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
const CODE: [&str; 3] = [
    "```rust\nfn main() {\n    println!(\"hello {}\", name);\n}\n```",
    "```sql\nSELECT id, total FROM invoices WHERE status = 'paid' AND total > 100;\n```",
    "```yaml\nspec:\n  replicas: 3\n  template:\n    metadata:\n      labels: {app: \"web\"}\n```",
];
const ERRORS: [&str; 6] = [
    "account {n} not found: use the billing id, not the email",
    "timeout after 30s while calling https://api.internal/v1/accounts/{n}",
    "permission denied: role \"viewer\" cannot update subscriptions",
    "rate limited (429), retry after {n} ms",
    "invalid query: column \"revenu\" does not exist",
    "Error from server (NotFound): deployments.apps \"web-{n}\" not found",
];
const FEEDBACK: [&str; 5] = [
    "Please never schedule calls before 10am",
    "Too long, keep it under five sentences.",
    "Great answer, exactly what I needed.",
    "Always use the billing id for account lookups.",
    "Don't promise refunds before checking the policy.",
];

fn fill(rng: &mut Rng, template: &str) -> String {
    template.replace("{n}", &(rng.below(90_000) + 100).to_string())
}

/// `min` to `min + spread - 1` sentences from `pool`, sometimes split into paragraphs.
fn sentences(rng: &mut Rng, pool: &[&str], min: usize, spread: usize) -> String {
    let count = min + rng.below(spread);
    let mut text = String::new();
    for i in 0..count {
        if i > 0 {
            text.push_str(if rng.chance(15) { "\n\n" } else { " " });
        }
        let template = rng.pick(pool);
        text.push_str(&fill(rng, template));
    }
    text
}

fn assistant_text(rng: &mut Rng) -> String {
    let mut text = sentences(rng, &ASSISTANT_SENTENCES, 2, 14);
    if rng.chance(20) {
        text.push_str("\n\n");
        text.push_str(rng.pick(&CODE));
    }
    text
}

fn tool_input(rng: &mut Rng, tool: &str) -> serde_json::Value {
    match tool {
        "lookup_account" => json!({"email": fill(rng, "customer{n}@example.com"), "include": ["plan", "invoices"]}),
        "run_query" => {
            json!({"sql": fill(rng, "SELECT * FROM events WHERE account_id = {n} LIMIT 50"), "timeout_s": 30})
        }
        "kubectl" => json!({"args": ["rollout", "status", fill(rng, "deploy/web-{n}"), "-n", "prod"]}),
        "read_file" => json!({"path": fill(rng, "src/billing/invoice_{n}.rs"), "range": [1, 200]}),
        _ => json!({"query": sentences(rng, &USER_SENTENCES, 1, 1), "limit": 10}),
    }
}

/// Writes one session: a header, then turns of user message, tool calls and results, assistant
/// message; sometimes feedback; usually an outcome.
fn write_session(
    out: &mut impl Write,
    rng: &mut Rng,
    id: &str,
    agent: &str,
    started: Timestamp,
) -> std::io::Result<()> {
    let mut at = started;
    let mut tick = |rng: &mut Rng| {
        at += SignedDuration::from_secs(1 + rng.below(40) as i64);
        at.to_string()
    };
    line(
        out,
        json!({"type": "session", "id": id, "agent": agent, "started": started.to_string(),
               "labels": {"tier": rng.pick(&["free", "pro", "enterprise"]), "project": rng.pick(&["billing", "web", "data"])}}),
    )?;
    let turns = 2 + rng.below(12);
    for _ in 0..turns {
        line(
            out,
            json!({"type": "message", "ts": tick(rng), "role": "user", "text": sentences(rng, &USER_SENTENCES, 1, 4)}),
        )?;
        for _ in 0..rng.below(4) {
            let tool = rng.pick(&TOOLS);
            line(
                out,
                json!({"type": "tool_call", "ts": tick(rng), "name": tool, "input": tool_input(rng, tool)}),
            )?;
            if rng.chance(12) {
                let error = rng.pick(&ERRORS);
                line(
                    out,
                    json!({"type": "tool_result", "ts": tick(rng), "name": tool, "ok": false, "error": fill(rng, error)}),
                )?;
            } else {
                line(
                    out,
                    json!({"type": "tool_result", "ts": tick(rng), "name": tool, "ok": true, "output": sentences(rng, &ASSISTANT_SENTENCES, 1, 10)}),
                )?;
            }
        }
        line(
            out,
            json!({"type": "message", "ts": tick(rng), "role": "assistant", "text": assistant_text(rng)}),
        )?;
    }
    if rng.chance(25) {
        let from = rng.pick(&["user", "user", "reviewer", "grader"]);
        let rating = if from == "grader" {
            json!(rng.below(101) as f64 / 100.0)
        } else {
            json!(rng.below(3) as i64 - 1)
        };
        line(
            out,
            json!({"type": "feedback", "ts": tick(rng), "from": from, "rating": rating, "text": rng.pick(&FEEDBACK)}),
        )?;
    }
    if rng.chance(80) {
        line(
            out,
            json!({"type": "outcome", "ts": tick(rng), "success": rng.chance(70), "score": rng.below(101) as f64 / 100.0, "labels": ["resolved"]}),
        )?;
    }
    Ok(())
}

fn line(out: &mut impl Write, value: serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &value)?;
    out.write_all(b"\n")
}

/// The generated transcripts; the directory is removed when dropped.
struct Corpus {
    dir: PathBuf,
    files: Vec<PathBuf>,
    bytes: u64,
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Generates at least `megabytes` of transcripts in `agent/day/s-N.jsonl` folders.
fn generate(megabytes: u64) -> Corpus {
    let dir = std::env::temp_dir().join(format!("reverie-bench-dream-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let target = megabytes * 1_000_000;
    let mut rng = Rng(0x5EED);
    let mut corpus = Corpus {
        dir,
        files: Vec::new(),
        bytes: 0,
    };
    let origin: Timestamp = "2026-09-01T00:00:00Z".parse().expect("valid");
    let mut n = 0u64;
    while corpus.bytes < target {
        let agent = rng.pick(&AGENTS);
        let started = origin + SignedDuration::from_secs((n * 600 + rng.below(600) as u64) as i64);
        let folder = corpus.dir.join(agent).join(started.strftime("%Y-%m-%d").to_string());
        fs::create_dir_all(&folder).expect("create corpus folder");
        let id = format!("s-{n:07}");
        let path = folder.join(format!("{id}.jsonl"));
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(&path).expect("create transcript"));
        write_session(&mut out, &mut rng, &id, agent, started).expect("write transcript");
        out.flush().expect("flush transcript");
        drop(out);
        corpus.bytes += fs::metadata(&path).expect("written").len();
        corpus.files.push(path);
        n += 1;
    }
    corpus
}

fn settings() -> DreamSettings {
    DreamSettings {
        lookback_sessions: usize::MAX,
        max_age: None,
        label_selector: Vec::new(),
        min_evidence: 2,
        max_tokens: 2_000,
        stale_after: Duration::from_secs(90 * 86_400),
        ..DreamSettings::defaults("2027-01-01T00:00:00Z".parse().expect("valid"))
    }
}

/// Counts what it is given: the cheapest possible consumer of the stream.
#[derive(Default)]
struct CountRecords {
    sessions: u64,
    records: u64,
}

impl SessionVisitor for CountRecords {
    fn start_session(&mut self, _session: &SessionMeta) {
        self.sessions += 1;
    }

    fn record(&mut self, record: Record<'_>) {
        black_box(&record);
        self.records += 1;
    }

    fn end_session(&mut self) {}
}

/// The baseline: split lines as the reader does and parse each into a `serde_json::Value`.
fn parse_only_value(files: &[PathBuf]) -> u64 {
    let mut line = Vec::with_capacity(64 * 1024);
    let mut values = 0;
    for path in files {
        let mut input = BufReader::with_capacity(256 * 1024, File::open(path).expect("open"));
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).expect("read") == 0 {
                break;
            }
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) {
                black_box(&value);
                values += 1;
            }
        }
    }
    values
}

/// Benchmarks `stream` over `selection` with a fresh visitor per iteration from `make_visitor`.
///
/// This is the place for further stream consumers: the signal miner ("extraction") is measured
/// by calling this with a factory for it, next to `stream_count`, so that both run over the same
/// corpus and report MB/s in the same group.
fn bench_visitor<V: SessionVisitor>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    selection: &Selection,
    mut make_visitor: impl FnMut() -> V,
) {
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut visitor = make_visitor();
            let mut stats = ReadStats::default();
            stream(&selection.sessions, &mut visitor, &mut stats);
            black_box((visitor, stats))
        })
    });
}

fn session_reading(c: &mut Criterion) {
    let megabytes = std::env::var("REVERIE_BENCH_CORPUS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CORPUS_MB);
    let corpus = generate(megabytes);
    let selection = discover(&corpus.dir, &settings()).expect("discover the corpus");
    assert_eq!(
        selection.sessions.len(),
        corpus.files.len(),
        "every generated file is a session"
    );
    let mut check = CountRecords::default();
    let mut stats = ReadStats::default();
    stream(&selection.sessions, &mut check, &mut stats);
    assert_eq!(stats.lines_skipped, 0);
    eprintln!(
        "corpus: {} sessions, {:.1} MB, {} lines, {} records",
        corpus.files.len(),
        corpus.bytes as f64 / 1e6,
        stats.lines_read,
        check.records
    );

    let mut group = c.benchmark_group("session_reading");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(corpus.bytes));
    group.bench_function("parse_only_value", |b| b.iter(|| parse_only_value(&corpus.files)));

    let peak = PeakMemory::reset();
    bench_visitor(&mut group, "stream_count", &selection, CountRecords::default);
    peak.report("session_reading/stream_count");

    // Extraction: the full signal miner over the same sessions.
    bench_visitor(&mut group, "extract", &selection, || {
        reverie::dream::signals::Miner::new(reverie::dream::signals::MineSettings::new(3))
    });
    // Collective extraction: the same sessions, selected per agent folder and pooled into one
    // miner that also counts agents per pattern (a collective pass with `minAgents: 2`).
    let pooled: Vec<Selection> = AGENTS
        .iter()
        .map(|agent| discover(&corpus.dir.join(agent), &settings()).expect("discover an agent"))
        .collect();
    assert_eq!(
        pooled.iter().map(|s| s.sessions.len()).sum::<usize>(),
        selection.sessions.len()
    );
    group.bench_function("extract_collective", |b| {
        b.iter(|| {
            let mut miner = reverie::dream::signals::Miner::collective(
                reverie::dream::signals::MineSettings {
                    min_agents: 2,
                    ..reverie::dream::signals::MineSettings::new(3)
                },
                &AGENTS,
            );
            let mut stats = ReadStats::default();
            for (agent, selection) in pooled.iter().enumerate() {
                miner.set_agent(agent as u32);
                stream(&selection.sessions, &mut miner, &mut stats);
            }
            black_box((miner, stats))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("session_discovery");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(corpus.files.len() as u64));
    group.bench_function("discover", |b| {
        b.iter(|| discover(&corpus.dir, &settings()).expect("discover"))
    });
    group.finish();
}

/// Peak resident memory of a stretch of the bench (Linux: `VmHWM`, reset via `clear_refs`), next
/// to the resident memory at its start: the difference is what that stretch added on top of the
/// corpus listing and the selection, which grow with the number of sessions, not their size.
struct PeakMemory {
    reset: bool,
    before_kb: Option<u64>,
}

impl PeakMemory {
    fn reset() -> Self {
        let reset = fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            reset,
            before_kb: status_kb("VmRSS:"),
        }
    }

    fn report(&self, what: &str) {
        if let (true, Some(before), Some(peak)) = (self.reset, self.before_kb, status_kb("VmHWM:")) {
            eprintln!(
                "{what}: peak RSS {peak} kB, {before} kB before it: +{} kB",
                peak.saturating_sub(before)
            );
        }
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// A memory of about `tokens` estimated tokens: lessons with evidence, spread over a year.
fn large_memory(tokens: usize) -> reverie::memory::MemoryDocument {
    use reverie::memory::document::{Entry, EntryKind, Evidence};
    let start: Timestamp = "2025-11-20T00:00:00Z".parse().unwrap();
    let mut doc =
        reverie::memory::MemoryDocument::with_instructions("Help customers with billing questions.", &[], start);
    let mut rng = Rng(7);
    let mut i = 0u64;
    while reverie::memory::tokens::loaded_tokens("bench", &doc) < tokens {
        for _ in 0..200 {
            let created = start + SignedDuration::from_hours(rng.below(24 * 360) as i64);
            let section = ["lessons", "preferences", "workflows", "facts"][rng.below(4)];
            doc.section_mut(section).entries.push(Entry {
                id: format!("entry-{i}"),
                text: sentences(&mut rng, &ASSISTANT_SENTENCES, 1, 2),
                kind: EntryKind::Lesson,
                evidence: Evidence {
                    count: 1 + rng.below(20) as u32,
                    first_seen: Some(created),
                    last_seen: Some(created),
                    sessions: vec![format!("s-{i}")],
                    ..Evidence::default()
                },
                provenance: None,
                created,
                reinforced: Some(created),
                pinned: false,
            });
            i += 1;
        }
    }
    doc.normalize();
    doc
}

/// Compaction of a 180k-token memory to a 50k-token budget (curation with no new lessons).
fn compaction(c: &mut Criterion) {
    let memory = large_memory(180_000);
    let settings = DreamSettings {
        max_tokens: 50_000,
        stale_after: std::time::Duration::from_secs(10 * 365 * 86_400),
        now: "2026-11-20T00:00:00Z".parse().unwrap(),
        ..settings()
    };
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    group.bench_function("180k_to_50k_tokens", |b| {
        b.iter(|| {
            let curated = reverie::dream::curate::curate("bench", &memory, &[], &[], &settings).unwrap();
            assert!(curated.tokens_after <= 50_000);
            curated.compacted
        })
    });
    group.finish();
}

criterion_group!(benches, session_reading, compaction);
criterion_main!(benches);
