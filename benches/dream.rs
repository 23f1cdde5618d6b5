//! Dream engine benchmarks on a generated corpus of realistic transcripts (see docs/benchmarks.md).
//!
//! - `session_reading/parse_only_value`: the baseline. The same files, the same line splitting,
//!   each line parsed into a `serde_json::Value`: what "just parsing the JSON" costs.
//! - `session_reading/stream_count`: `sessions::stream` with a visitor that counts records.
//! - `session_discovery/discover`: finding and selecting the sessions (first lines only).
//! - `transcript_formats/<format>`: discovering and streaming the same sessions written as each
//!   format reverie imports (`reverie_dev::formats`), against reverie's own JSONL cut down to
//!   what those formats carry. Throughput is in bytes of each format's files.
//!
//! The corpus is reverie-dev's volume preset (`reverie-dev gen-sessions --volume`), generated
//! once per run into a temporary directory (removed at the end), at about
//! `REVERIE_BENCH_CORPUS_MB` megabytes (default 64); the memory compacted is reverie-dev's
//! too (`reverie_dev::memories`). Run:
//! `cargo bench --bench dream -- --warm-up-time 1 --measurement-time 5`.
//!
//! On Linux the bench also prints the peak resident memory of the streaming benchmark alone
//! (`VmHWM` after resetting it through `/proc/self/clear_refs`), so that memory can be compared
//! across corpus sizes.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use reverie::dream::model::{DreamSettings, ReadStats, Record, SessionMeta, SessionVisitor};
use reverie::dream::sessions::{Selection, discover, stream};
use reverie_dev::formats::{self, Rendering};
use reverie_dev::memories;
use reverie_dev::synth::{self, SynthConfig};

const DEFAULT_CORPUS_MB: u64 = 64;

/// The agents of the corpus, one folder each (the collective benchmark pools them).
const AGENTS: [&str; 4] = ["support-bot", "billing-assistant", "release-helper", "research-analyst"];

/// About how many bytes a session of reverie-dev's volume preset has, to size the corpus.
const VOLUME_SESSION_BYTES: u64 = 4_000;

/// The generated transcripts; the directory is removed when dropped.
struct Corpus {
    dir: PathBuf,
    sessions: u64,
    bytes: u64,
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Generates about `megabytes` of transcripts with reverie-dev's volume preset, one folder per
/// agent, every line readable (no malformed lines, no gzip) so the baseline parses what the
/// reader reads.
fn generate(megabytes: u64) -> Corpus {
    let dir = std::env::temp_dir().join(format!("reverie-bench-dream-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let per_agent = (megabytes * 1_000_000 / VOLUME_SESSION_BYTES / AGENTS.len() as u64).max(1);
    let mut corpus = Corpus {
        dir,
        sessions: 0,
        bytes: 0,
    };
    for (index, agent) in AGENTS.iter().enumerate() {
        let config = SynthConfig {
            agent: (*agent).to_string(),
            malformed_fraction: 0.0,
            gzip_fraction: 0.0,
            ..SynthConfig::volume(0x5EED + index as u64, per_agent as usize)
        };
        let truth = synth::generate(&config, &corpus.dir.join(agent)).expect("generate the corpus");
        corpus.sessions += truth.session_count;
        corpus.bytes += truth.bytes_written;
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
fn parse_only_value(sessions: &[SessionMeta]) -> u64 {
    let mut line = Vec::with_capacity(64 * 1024);
    let mut values = 0;
    for session in sessions {
        let mut input = BufReader::with_capacity(256 * 1024, File::open(&session.path).expect("open"));
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

/// A memory of the `count` strongest patterns mined from `selection`, as lessons adopted at the
/// start of its middle session.
fn mined_lessons(selection: &Selection, count: usize) -> reverie::memory::MemoryDocument {
    use reverie::memory::{Entry, EntryKind, Evidence, MemoryDocument, Provenance, Section};
    let mut miner = reverie::dream::signals::Miner::new(reverie::dream::signals::MineSettings::new(3));
    stream(&selection.sessions, &mut miner, &mut ReadStats::default());
    let adopted = selection.sessions[selection.sessions.len() / 2].started;
    let entries: Vec<Entry> = miner
        .finish()
        .candidates
        .into_iter()
        .filter(|c| c.pattern.is_some())
        .take(count)
        .map(|c| Entry {
            id: c.id.clone(),
            text: c.text.clone(),
            kind: EntryKind::Lesson,
            evidence: Evidence {
                count: c.evidence.count,
                pattern: c.pattern,
                ..Evidence::default()
            },
            provenance: Some(Provenance {
                source: "bench".into(),
                approved_by: None,
                at: adopted,
                revision: None,
                applied: Some(adopted),
            }),
            created: adopted,
            reinforced: None,
            pinned: false,
        })
        .collect();
    assert!(entries.len() >= 5, "the corpus yields lessons to measure");
    MemoryDocument {
        sections: vec![Section {
            name: "lessons".into(),
            entries,
        }],
        ..MemoryDocument::default()
    }
}

fn session_reading(c: &mut Criterion) {
    let megabytes = std::env::var("REVERIE_BENCH_CORPUS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CORPUS_MB);
    let corpus = generate(megabytes);
    let selection = discover(&corpus.dir, &settings()).expect("discover the corpus");
    assert_eq!(
        selection.sessions.len() as u64,
        corpus.sessions,
        "every generated file is a session"
    );
    let mut check = CountRecords::default();
    let mut stats = ReadStats::default();
    stream(&selection.sessions, &mut check, &mut stats);
    assert_eq!(stats.lines_skipped, 0);
    eprintln!(
        "corpus: {} sessions, {:.1} MB, {} lines, {} records",
        corpus.sessions,
        corpus.bytes as f64 / 1e6,
        stats.lines_read,
        check.records
    );

    let mut group = c.benchmark_group("session_reading");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(corpus.bytes));
    group.bench_function("parse_only_value", |b| b.iter(|| parse_only_value(&selection.sessions)));

    let peak = PeakMemory::reset();
    bench_visitor(&mut group, "stream_count", &selection, CountRecords::default);
    peak.report("session_reading/stream_count");

    // Extraction: the full signal miner over the same sessions.
    bench_visitor(&mut group, "extract", &selection, || {
        reverie::dream::signals::Miner::new(reverie::dream::signals::MineSettings::new(3))
    });
    // The lesson-effect meter over the same sessions, measuring 20 lessons mined from them
    // (every kind of pattern the corpus yields), adopted half-way through.
    let memory = mined_lessons(&selection, 20);
    bench_visitor(&mut group, "effect_meter", &selection, || {
        reverie::dream::effect::EffectMeter::new(&memory, Default::default(), Default::default())
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
    group.sample_size(10).throughput(Throughput::Elements(corpus.sessions));
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

/// Compaction of a 180k-token memory to a 50k-token budget (curation with no new lessons).
fn compaction(c: &mut Criterion) {
    let memory = memories::lessons_of_tokens("bench", 180_000, 7);
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
            let curated =
                reverie::dream::curate::curate("bench", &memory, &[], &[], &Default::default(), &settings).unwrap();
            assert!(curated.tokens_after <= 50_000);
            curated.compacted
        })
    });
    group.finish();
}

/// A directory of the corpus's sessions written by `render`, one file per session; returns it
/// with its size in bytes.
fn rendered(
    corpus: &Corpus,
    name: &str,
    suffix: &str,
    render: impl Fn(&[serde_json::Value]) -> String,
) -> (PathBuf, u64) {
    let dir = corpus.dir.with_extension(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a directory for the rendering");
    let mut bytes = 0;
    // Session files only: the generator writes its ground truth next to them.
    let sessions = walkdir(&corpus.dir)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"));
    for (n, entry) in sessions.enumerate() {
        let session = formats::records(&fs::read_to_string(&entry).expect("a generated session"));
        let text = render(&session);
        bytes += text.len() as u64;
        let file = format!("{n}{suffix}");
        fs::write(dir.join(file), text).expect("write a rendered session");
    }
    (dir, bytes)
}

fn walkdir(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("the corpus") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(walkdir(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Reading throughput per transcript format, on the same sessions (an eighth of the corpus
/// size, so the four renderings fit on disk next to it).
fn transcript_formats(c: &mut Criterion) {
    let megabytes = std::env::var("REVERIE_BENCH_CORPUS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CORPUS_MB)
        / 8;
    let corpus = generate(megabytes.max(1));
    let mut group = c.benchmark_group("transcript_formats");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let reverie = rendered(&corpus, "reverie", ".jsonl", |s| {
        formats::reverie_jsonl(s, Rendering::Otlp.carries())
    });
    let mut dirs = vec![("reverie", reverie)];
    for rendering in Rendering::ALL {
        dirs.push((
            rendering.name(),
            rendered(&corpus, rendering.name(), rendering.suffix(), |s| rendering.render(s)),
        ));
    }
    for (name, (dir, bytes)) in &dirs {
        let read = || {
            let selection = discover(dir, &settings()).expect("discover a rendering");
            let mut count = CountRecords::default();
            let mut stats = ReadStats::default();
            stream(&selection.sessions, &mut count, &mut stats);
            (selection.sessions.len() as u64, count.records)
        };
        let (sessions, records) = read();
        assert_eq!(sessions, corpus.sessions, "{name}: every session is read");
        eprintln!(
            "{name}: {sessions} sessions, {records} records, {:.1} MB",
            *bytes as f64 / 1e6
        );
        group.throughput(Throughput::Bytes(*bytes));
        group.bench_function(*name, |b| b.iter(|| black_box(read())));
    }
    group.finish();
    for (_, (dir, _)) in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

criterion_group!(benches, session_reading, transcript_formats, compaction);
criterion_main!(benches);
