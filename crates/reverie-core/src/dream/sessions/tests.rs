//! Tests of session discovery, selection and streaming, on real files in a temporary directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use flate2::Compression as Level;
use flate2::write::GzEncoder;
use jiff::Timestamp;
use proptest::prelude::*;

use super::line::{Line, Malformed};
use super::reader::{self, Lines, Next};
use super::*;
use crate::dream::model::{Record, Role};

/// A directory removed when the test ends; unique per test and per call.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("reverie-sessions-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().expect("has parent")).expect("create parent");
        fs::write(&path, bytes).expect("write file");
        path
    }

    fn write_gz(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        self.write(relative, &gzip(bytes))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Level::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

fn ts(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

fn settings() -> DreamSettings {
    DreamSettings {
        lookback_sessions: 100,
        max_age: None,
        label_selector: Vec::new(),
        min_evidence: 2,
        max_tokens: 2_000,
        stale_after: Duration::from_secs(90 * 86_400),
        // These are the properties of reverie's own reader; the importers have their own tests.
        format: super::FormatChoice::Only(super::Format::Reverie),
        ..DreamSettings::defaults(ts("2026-11-20T00:00:00Z"))
    }
}

fn header(id: &str, started: &str) -> String {
    format!(r#"{{"type":"session","id":"{id}","agent":"support-bot","started":"{started}"}}"#)
}

fn user(text: &str) -> String {
    format!(r#"{{"type":"message","ts":"2026-11-19T10:00:03Z","role":"user","text":"{text}"}}"#)
}

fn transcript(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

/// A record with its strings owned, to compare after the line buffer is gone.
#[derive(Clone, Debug, PartialEq)]
enum Rec {
    Message(Role, String, Option<Timestamp>),
    ToolCall(String),
    ToolResult(String, bool, Option<String>),
    Feedback(String, Option<f64>, String),
    Outcome(Option<bool>, Option<f64>),
}

impl From<Record<'_>> for Rec {
    fn from(record: Record<'_>) -> Self {
        match record {
            Record::Message { role, text, ts } => Rec::Message(role, text.to_string(), ts),
            Record::ToolCall { name, .. } => Rec::ToolCall(name.to_string()),
            Record::ToolResult { name, ok, error, .. } => {
                Rec::ToolResult(name.to_string(), ok, error.map(str::to_string))
            }
            Record::Feedback { from, rating, text, .. } => Rec::Feedback(from.to_string(), rating, text.to_string()),
            Record::Outcome { success, score, .. } => Rec::Outcome(success, score),
        }
    }
}

/// Records every call, checking that calls nest (`start`, records, `end`).
#[derive(Default)]
struct Collect {
    sessions: Vec<(String, Vec<Rec>)>,
    open: bool,
    ends: usize,
}

impl SessionVisitor for Collect {
    fn start_session(&mut self, session: &SessionMeta) {
        assert!(!self.open, "start_session inside a session");
        self.open = true;
        self.sessions.push((session.id.clone(), Vec::new()));
    }

    fn record(&mut self, record: Record<'_>) {
        assert!(self.open, "record outside a session");
        self.sessions.last_mut().expect("started").1.push(record.into());
    }

    fn end_session(&mut self) {
        assert!(self.open, "end_session without start");
        self.open = false;
        self.ends += 1;
    }
}

impl Collect {
    fn ids(&self) -> Vec<&str> {
        self.sessions.iter().map(|(id, _)| id.as_str()).collect()
    }

    fn records(&self) -> usize {
        self.sessions.iter().map(|(_, r)| r.len()).sum()
    }
}

fn ids(selection: &Selection) -> Vec<&str> {
    selection.sessions.iter().map(|s| s.id.as_str()).collect()
}

/// Reads one file as a session, returning its records and line counts.
fn read_one(path: &Path) -> (Vec<Rec>, SessionCounts, ReadStats) {
    let meta = SessionMeta {
        id: "s".into(),
        agent: None,
        started: Timestamp::UNIX_EPOCH,
        labels: BTreeMap::new(),
        path: path.to_path_buf(),
        bytes: 0,
        format: Default::default(),
        memory_revision: None,
    };
    let mut visitor = Collect::default();
    let mut stats = ReadStats::default();
    let counts = read_session(&meta, &mut visitor, &mut stats, &mut Vec::new());
    let records = visitor.sessions.pop().map(|(_, r)| r).unwrap_or_default();
    (records, counts, stats)
}

#[test]
fn finds_sessions_in_nested_folders_and_gzip_and_streams_them_in_order() {
    let dir = TempDir::new("nested");
    dir.write(
        "billing/2026/11/s-2.jsonl",
        &transcript(&[header("s-2", "2026-11-19T10:00:00Z"), user("second")]),
    );
    dir.write_gz(
        "support/s-1.jsonl.gz",
        &transcript(&[header("s-1", "2026-11-18T10:00:00Z"), user("first")]),
    );
    dir.write(
        "s-3.jsonl",
        &transcript(&[header("s-3", "2026-11-19T12:00:00Z"), user("third")]),
    );
    dir.write("notes.txt", b"not a transcript, not counted");
    dir.write("s-4.jsonl.bak", b"not a transcript either");

    let mut selection = discover(dir.path(), &settings()).expect("discover");
    assert_eq!(ids(&selection), ["s-1", "s-2", "s-3"]);
    assert_eq!(selection.stats.files_found, 3);
    assert!(
        selection.stats.files_skipped.is_empty(),
        "{:?}",
        selection.stats.files_skipped
    );
    let first = &selection.sessions[0];
    assert_eq!(first.agent.as_deref(), Some("support-bot"));
    assert_eq!(first.started, ts("2026-11-18T10:00:00Z"));
    assert!(first.path.ends_with("support/s-1.jsonl.gz"));
    assert_eq!(first.bytes, fs::metadata(&first.path).expect("exists").len());

    let mut visitor = Collect::default();
    stream(&selection.sessions, &mut visitor, &mut selection.stats);
    assert_eq!(visitor.ids(), ["s-1", "s-2", "s-3"]);
    assert_eq!(visitor.ends, 3);
    let texts: Vec<_> = visitor.sessions.iter().map(|(_, r)| r.clone()).collect();
    let at = Some(ts("2026-11-19T10:00:03Z"));
    assert_eq!(texts[0], [Rec::Message(Role::User, "first".into(), at)]);
    assert_eq!(texts[2], [Rec::Message(Role::User, "third".into(), at)]);
    assert_eq!(selection.stats.sessions_read, 3);
    assert_eq!(selection.stats.lines_read, 6, "headers are lines read");
    assert_eq!(selection.stats.lines_skipped, 0);
}

#[test]
fn bytes_read_counts_uncompressed_bytes() {
    let dir = TempDir::new("bytes");
    let content = transcript(&[header("s-1", "2026-11-18T10:00:00Z"), user("hello"), user("again")]);
    let path = dir.write_gz("s-1.jsonl.gz", &content);
    let (records, _, stats) = read_one(&path);
    assert_eq!(records.len(), 2);
    assert_eq!(stats.bytes_read, content.len() as u64);
    assert!(fs::metadata(&path).expect("exists").len() != content.len() as u64);
}

#[test]
fn a_session_without_header_takes_its_id_from_the_file_name_and_start_from_mtime() {
    let dir = TempDir::new("headerless");
    let path = dir.write("team/s-0099.jsonl", &transcript(&[user("no header here")]));
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
    dir.write_gz("s-0100.jsonl.gz", &transcript(&[user("compressed, no header")]));

    let selection = discover(dir.path(), &settings()).expect("discover");
    let by_id: BTreeMap<_, _> = selection.sessions.iter().map(|s| (s.id.as_str(), s)).collect();
    let headerless = by_id["s-0099"];
    assert_eq!(headerless.started, Timestamp::try_from(mtime).expect("in range"));
    assert_eq!(headerless.agent, None);
    assert!(headerless.labels.is_empty());
    assert!(by_id.contains_key("s-0100"), "gz stem drops .jsonl.gz: {by_id:?}");
}

#[test]
fn a_header_with_mistyped_fields_falls_back_field_by_field() {
    let dir = TempDir::new("mistyped-header");
    dir.write(
        "s-7.jsonl",
        &transcript(&[
            r#"{"type":"session","id":42,"agent":"bot","started":"yesterday","labels":{"tier":"gold","n":3,"ok":true,"deep":{"x":1}}}"#.into(),
        ]),
    );
    let selection = discover(dir.path(), &settings()).expect("discover");
    let meta = &selection.sessions[0];
    assert_eq!(meta.id, "s-7");
    assert_eq!(meta.agent.as_deref(), Some("bot"));
    let mtime = fs::metadata(&meta.path).and_then(|m| m.modified()).expect("mtime");
    assert_eq!(meta.started, Timestamp::try_from(mtime).expect("in range"));
    let labels: Vec<_> = meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(labels, ["n=3", "ok=true", "tier=gold"]);
}

#[test]
fn the_memory_revision_comes_from_the_header_else_the_label_and_nonsense_is_none() {
    let dir = TempDir::new("memory-revision");
    let sessions = [
        ("a", r#""memoryRevision":4"#),
        ("b", r#""memoryRevision":"7""#),
        ("c", r#""labels":{"reverie.dev/memory-revision":"9"}"#),
        (
            "d",
            r#""memoryRevision":-1,"labels":{"reverie.dev/memory-revision":"x9"}"#,
        ),
        ("e", r#""memoryRevision":2.5"#),
        ("f", r#""memoryRevision":"12345678901234567890123""#),
        ("g", r#""memoryRevision":{"r":1}"#),
    ];
    for (id, field) in sessions {
        dir.write(
            &format!("{id}.jsonl"),
            &transcript(&[format!(
                r#"{{"type":"session","id":"{id}","started":"2026-11-19T10:00:00Z",{field}}}"#
            )]),
        );
    }
    let selection = discover(dir.path(), &settings()).expect("discover");
    let revisions: Vec<(&str, Option<u64>)> = selection
        .sessions
        .iter()
        .map(|s| (s.id.as_str(), s.memory_revision))
        .collect();
    assert_eq!(
        revisions,
        [
            ("a", Some(4)),
            ("b", Some(7)),
            ("c", Some(9)),
            ("d", None),
            ("e", None),
            ("f", None),
            ("g", None)
        ]
    );
}

#[test]
fn lookback_keeps_the_most_recent_n_in_ascending_order_with_deterministic_ties() {
    let dir = TempDir::new("lookback");
    let sessions = [
        ("s-a", "2026-11-10T00:00:00Z"),
        ("s-b", "2026-11-15T00:00:00Z"),
        ("s-tie-2", "2026-11-18T00:00:00Z"),
        ("s-tie-1", "2026-11-18T00:00:00Z"),
        ("s-tie-3", "2026-11-18T00:00:00Z"),
        ("s-c", "2026-11-12T00:00:00Z"),
    ];
    for (id, started) in sessions {
        // File names unrelated to ids: order must come from `started`, then id.
        dir.write(
            &format!("{}-{id}.jsonl", 100 - id.len()),
            &transcript(&[header(id, started)]),
        );
    }
    let mut settings = settings();
    settings.lookback_sessions = 4;
    let selection = discover(dir.path(), &settings).expect("discover");
    assert_eq!(ids(&selection), ["s-b", "s-tie-1", "s-tie-2", "s-tie-3"]);

    settings.lookback_sessions = 2;
    let selection = discover(dir.path(), &settings).expect("discover");
    assert_eq!(
        ids(&selection),
        ["s-tie-2", "s-tie-3"],
        "ties: the larger id counts as more recent"
    );

    settings.lookback_sessions = 0;
    assert!(discover(dir.path(), &settings).expect("discover").sessions.is_empty());
}

#[test]
fn lookback_over_many_files_found_out_of_order_keeps_exactly_the_newest() {
    let dir = TempDir::new("lookback-many");
    let origin = ts("2026-11-01T00:00:00Z");
    for i in 0..40i64 {
        // File name order and start order disagree: start hour is a permutation of 0..40.
        let hour = (i * 17) % 40;
        let started = origin + jiff::SignedDuration::from_hours(hour);
        dir.write(
            &format!("f-{i:02}.jsonl"),
            &transcript(&[header(&format!("h-{hour:02}"), &started.to_string())]),
        );
    }
    let mut settings = settings();
    settings.lookback_sessions = 7;
    let selection = discover(dir.path(), &settings).expect("discover");
    assert_eq!(
        ids(&selection),
        ["h-33", "h-34", "h-35", "h-36", "h-37", "h-38", "h-39"]
    );
    assert_eq!(selection.stats.files_found, 40);
}

#[test]
fn two_files_with_the_same_id_and_start_are_ordered_by_path() {
    let dir = TempDir::new("same-id");
    dir.write("b/s-1.jsonl", &transcript(&[header("s-1", "2026-11-18T00:00:00Z")]));
    dir.write("a/s-1.jsonl", &transcript(&[header("s-1", "2026-11-18T00:00:00Z")]));
    let selection = discover(dir.path(), &settings()).expect("discover");
    let paths: Vec<_> = selection.sessions.iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, [dir.path().join("a/s-1.jsonl"), dir.path().join("b/s-1.jsonl")]);
}

#[test]
fn max_age_drops_older_sessions_and_keeps_the_boundary() {
    let dir = TempDir::new("max-age");
    dir.write("new.jsonl", &transcript(&[header("new", "2026-11-19T00:00:00Z")]));
    dir.write("edge.jsonl", &transcript(&[header("edge", "2026-11-13T00:00:00Z")]));
    dir.write("old.jsonl", &transcript(&[header("old", "2026-11-12T23:59:59Z")]));
    let mut settings = settings();
    settings.max_age = Some(Duration::from_secs(7 * 86_400));
    let selection = discover(dir.path(), &settings).expect("discover");
    assert_eq!(ids(&selection), ["edge", "new"]);
    assert_eq!(selection.stats.files_found, 3, "found counts files before the lookback");

    settings.max_age = Some(Duration::MAX);
    assert_eq!(discover(dir.path(), &settings).expect("discover").sessions.len(), 3);
}

#[test]
fn label_selector_requires_every_entry() {
    let dir = TempDir::new("labels");
    let with_labels = |id: &str, labels: &str| {
        format!(r#"{{"type":"session","id":"{id}","started":"2026-11-19T00:00:00Z","labels":{labels}}}"#)
    };
    dir.write(
        "1.jsonl",
        &transcript(&[with_labels(
            "ent-billing",
            r#"{"tier":"enterprise","project":"billing"}"#,
        )]),
    );
    dir.write(
        "2.jsonl",
        &transcript(&[with_labels("ent", r#"{"tier":"enterprise"}"#)]),
    );
    dir.write(
        "3.jsonl",
        &transcript(&[with_labels("free-billing", r#"{"tier":"free","project":"billing"}"#)]),
    );
    dir.write("4.jsonl", &transcript(&[header("none", "2026-11-19T00:00:00Z")]));

    let select = |selector: Vec<(&str, Option<&str>)>| {
        let mut settings = settings();
        settings.label_selector = selector
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        let selection = discover(dir.path(), &settings).expect("discover");
        ids(&selection).into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(select(vec![("tier", Some("enterprise"))]), ["ent", "ent-billing"]);
    assert_eq!(select(vec![("project", None)]), ["ent-billing", "free-billing"]);
    assert_eq!(
        select(vec![("tier", Some("enterprise")), ("project", None)]),
        ["ent-billing"]
    );
    assert_eq!(select(vec![("tier", Some("gold"))]), Vec::<String>::new());
    assert_eq!(select(vec![]).len(), 4);
}

#[test]
fn files_that_are_not_sessions_are_skipped_with_a_reason() {
    let dir = TempDir::new("not-sessions");
    dir.write("README.jsonl", b"# Sessions\n\nThis folder holds transcripts.\n");
    dir.write("garbage.jsonl", &[0x7f, b'E', b'L', b'F', 0, 0, 0xff, 0xfe, 3, 1]);
    dir.write("empty.jsonl", b"");
    dir.write("blank.jsonl", b"\n   \n\r\n");
    dir.write("array.jsonl", b"[1,2,3]\n");
    dir.write("config.jsonl", b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}\n");
    dir.write("future.jsonl", b"{\"type\":\"telemetry\",\"x\":1}\n");
    dir.write("broken.jsonl", b"{\"type\":\"session\",\"id\":\n");
    dir.write("latin1.jsonl", b"{\"type\":\"session\",\"id\":\"caf\xe9\"}\n");
    dir.write("plain.jsonl.gz", b"{\"type\":\"session\"}\n");
    dir.write("short.jsonl.gz", &gzip(b"{\"type\":\"session\"}\n")[..6]);
    dir.write("ok.jsonl", &transcript(&[header("ok", "2026-11-19T00:00:00Z")]));

    let selection = discover(dir.path(), &settings()).expect("discover");
    assert_eq!(ids(&selection), ["ok"]);
    assert_eq!(selection.stats.files_found, 12);
    let reasons: BTreeMap<_, _> = selection
        .stats
        .files_skipped
        .iter()
        .map(|s| {
            let name = Path::new(&s.path)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            (name, s.reason.as_str())
        })
        .collect();
    let expected = [
        ("README.jsonl", "not a session: the first line is not a JSON object"),
        ("garbage.jsonl", "not a session: the first line is not a JSON object"),
        ("empty.jsonl", "not a session: the file is empty"),
        ("blank.jsonl", "not a session: the file is empty"),
        ("array.jsonl", "not a session: the first line is not a JSON object"),
        ("config.jsonl", "not a session: the first line has no string \"type\""),
        (
            "future.jsonl",
            "not a session: the first line has the unknown type \"telemetry\"",
        ),
        ("broken.jsonl", "not a session: the first line is not valid JSON"),
        ("latin1.jsonl", "not a session: the first line is not valid UTF-8"),
        ("plain.jsonl.gz", "not a readable gzip stream: invalid gzip header"),
        ("short.jsonl.gz", "truncated gzip before the first line"),
    ];
    for (name, reason) in expected {
        assert_eq!(reasons.get(name).copied(), Some(reason), "{name}: {reasons:#?}");
    }
    assert_eq!(reasons.len(), expected.len());
}

#[test]
fn an_empty_directory_has_no_sessions_and_a_missing_one_is_an_error() {
    let dir = TempDir::new("empty");
    let selection = discover(dir.path(), &settings()).expect("empty dir is fine");
    assert_eq!(selection, Selection::default());

    let missing = dir.path().join("nowhere");
    let err = discover(&missing, &settings()).expect_err("missing root");
    assert!(matches!(err, SessionsError::NotFound { .. }));
    assert_eq!(
        err.to_string(),
        format!("sessions directory {} does not exist", missing.display())
    );
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_once_and_loops_are_not_followed() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new("symlinks");
    let real = dir.write("real/s-1.jsonl", &transcript(&[header("s-1", "2026-11-19T00:00:00Z")]));
    symlink(&real, dir.path().join("alias.jsonl")).expect("file symlink");
    symlink(dir.path(), dir.path().join("real/loop")).expect("dir loop");
    let elsewhere = TempDir::new("symlink-target");
    elsewhere.write("s-2.jsonl", &transcript(&[header("s-2", "2026-11-19T01:00:00Z")]));
    symlink(elsewhere.path(), dir.path().join("mounted")).expect("dir symlink");

    let selection = discover(dir.path(), &settings()).expect("discover");
    assert_eq!(ids(&selection), ["s-1", "s-2"]);
    assert_eq!(
        selection.stats.files_found, 2,
        "one file reached by two paths is one file"
    );
    assert!(
        selection.stats.files_skipped.is_empty(),
        "{:?}",
        selection.stats.files_skipped
    );
}

#[cfg(unix)]
#[test]
fn a_configmap_style_mount_is_read_once() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new("configmap");
    dir.write(
        "..2026_11_19_10_00_00.123/s-1.jsonl",
        &transcript(&[header("s-1", "2026-11-19T00:00:00Z")]),
    );
    symlink("..2026_11_19_10_00_00.123", dir.path().join("..data")).expect("..data");
    symlink("..data/s-1.jsonl", dir.path().join("s-1.jsonl")).expect("key link");
    let selection = discover(dir.path(), &settings()).expect("discover");
    assert_eq!(ids(&selection), ["s-1"]);
    assert_eq!(selection.sessions[0].path, dir.path().join("s-1.jsonl"));
    assert_eq!(selection.stats.files_found, 1);
}

#[cfg(unix)]
#[test]
fn a_broken_symlink_named_like_a_transcript_is_reported() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new("broken-link");
    symlink(dir.path().join("gone.jsonl"), dir.path().join("s-1.jsonl")).expect("symlink");
    let selection = discover(dir.path(), &settings()).expect("discover");
    assert!(selection.sessions.is_empty());
    assert_eq!(selection.stats.files_found, 1);
    let skipped = &selection.stats.files_skipped[0];
    assert!(skipped.path.ends_with("s-1.jsonl"), "{skipped:?}");
    assert!(skipped.reason.starts_with("unreadable: "), "{skipped:?}");
}

#[test]
fn bad_lines_are_skipped_and_counted_unknown_ones_ignored() {
    let dir = TempDir::new("bad-lines");
    let mut content = Vec::new();
    let mut line = |bytes: &[u8]| {
        content.extend_from_slice(bytes);
        content.push(b'\n');
    };
    line(header("s-1", "2026-11-19T10:00:00Z").as_bytes()); // ignored: the header
    line(user("kept 1").as_bytes()); // record
    line(b"{\"type\":\"message\",\"role\":\"user\",\"text\":\"cut"); // skipped: malformed JSON
    line(b"{\"type\":\"message\",\"role\":\"user\",\"text\":\"caf\xe9\"}"); // skipped: invalid UTF-8
    line(b"{\"type\":\"tool_call\",\"name\":\"x\",\"input\":{\"q\":\"\xff\"}}"); // skipped: invalid UTF-8 anywhere
    line(b"[\"type\",\"message\"]"); // skipped: not an object
    line(b"\"message\""); // skipped: not an object
    line(b"42"); // skipped: not an object
    line(b"{\"type\":\"message\",\"role\":\"user\",\"text\":5}"); // skipped: wrong field type
    line(b"{\"type\":\"message\",\"role\":\"user\"}"); // skipped: missing text
    line(b"{\"type\":\"tool_result\",\"name\":\"x\",\"ok\":\"yes\"}"); // skipped: wrong field type
    line(b"{\"type\":\"tool_call\"}"); // skipped: missing name
    line(b"{\"type\":\"feedback\",\"rating\":\"bad\"}"); // skipped: wrong field type
    line(b"{\"type\":\"outcome\",\"success\":1}"); // skipped: wrong field type
    line(b"{\"type\":\"message\",\"role\":\"user\",\"text\":\"a\",\"ts\":1700000000}"); // skipped: ts not a string
    line(b"{\"role\":\"user\",\"text\":\"no type\"}"); // skipped: no type
    line(b"{\"type\":7}"); // skipped: type not a string
    line(b"{\"type\":\"message\",\"type\":\"message\",\"role\":\"user\",\"text\":\"a\"}"); // skipped: duplicate key
    line(b"{\"type\":\"message\",\"role\":\"user\",\"text\":\"a\"} trailing"); // skipped: trailing data
    line(b"{\"type\":\"thinking\",\"text\":5,\"role\":[]}"); // ignored: unknown type
    line(b"{\"type\":\"message\",\"role\":\"tool\",\"text\":\"x\"}"); // ignored: unknown role
    line(b"{\"type\":\"session\",\"id\":\"again\"}"); // ignored: a second header
    line(b""); // blank: not counted
    line(b"  \t\r"); // blank: not counted
    content.extend_from_slice(user("kept 2, no final newline").as_bytes());
    let path = dir.write("s-1.jsonl", &content);

    let (records, counts, stats) = read_one(&path);
    let texts: Vec<_> = records
        .iter()
        .map(|r| match r {
            Rec::Message(_, text, _) => text.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["kept 1", "kept 2, no final newline"]);
    assert_eq!(
        counts,
        SessionCounts {
            lines: 23,
            records: 2,
            skipped: 17,
            ignored: 4
        }
    );
    assert_eq!(stats.lines_read, 23);
    assert_eq!(stats.lines_skipped, 17);
    assert_eq!(stats.bytes_read, content.len() as u64);
    assert!(stats.files_skipped.is_empty());
}

#[test]
fn malformed_lines_say_why() {
    let why = |bytes: &[u8]| Line::parse(bytes).and_then(|l| l.record().map(|r| r.is_some()));
    assert_eq!(
        why(b"{\"type\":\"message\",\"role\":\"user\",\"text\":5}"),
        Err(Malformed::BadField("text"))
    );
    assert_eq!(
        why(b"{\"type\":\"tool_result\",\"name\":\"x\",\"ok\":1}"),
        Err(Malformed::BadField("ok"))
    );
    assert_eq!(
        why(b"{\"type\":\"feedback\",\"from\":1}"),
        Err(Malformed::BadField("from"))
    );
    assert_eq!(
        why(b"{\"type\":\"outcome\",\"score\":\"high\"}"),
        Err(Malformed::BadField("score"))
    );
    assert_eq!(why(b"{\"type\":1}"), Err(Malformed::NoType));
    assert_eq!(
        why(b"{\"a\":1,\"a\":2,\"type\":\"outcome\"}"),
        Ok(true),
        "unknown duplicates are ignored"
    );
    assert_eq!(
        why(b"{\"ok\":1,\"ok\":2,\"type\":\"outcome\"}"),
        Err(Malformed::BadShape)
    );
    assert_eq!(why(b"{\"type\":"), Err(Malformed::NotJson));
    assert_eq!(why(b" [1]"), Err(Malformed::NotObject));
    assert_eq!(why(b"{\"text\":\"\xc3\x28\"}"), Err(Malformed::NotUtf8));
    assert_eq!(why(b"{\"type\":\"outcome\"}\r\n"), Ok(true), "CRLF line endings");
}

#[test]
fn strings_with_escapes_are_decoded() {
    let line = br#"{"type":"message","role":"assistant","text":"He said \"hi\"\nthen \u00e9\u2603 \ud83d\ude00 \\ \/ \t done"}"#;
    let parsed = Line::parse(line).expect("valid");
    let record = parsed.record().expect("well formed").expect("a record");
    assert_eq!(
        Rec::from(record),
        Rec::Message(Role::Assistant, "He said \"hi\"\nthen é☃ 😀 \\ / \t done".into(), None)
    );
    assert_eq!(
        Line::parse(br#"{"type":"message","role":"user","text":"\ud83d"}"#).err(),
        Some(Malformed::NotJson),
        "a lone surrogate is not a string"
    );
}

#[test]
fn every_record_type_maps_its_fields() {
    let dir = TempDir::new("fields");
    let lines = [
        r#"{"type":"message","ts":"2026-11-19T10:00:03+01:00","role":"system","text":"be brief","extra":{"a":[1,2]}}"#,
        r#"{"type":"message","ts":"not a time","role":"assistant","text":"kept without a time"}"#,
        r#"{"type":"tool_call","ts":"2026-11-19T10:00:04Z","name":"lookup_account","input":{"email":"a@b.c"}}"#,
        r#"{"type":"tool_result","name":"lookup_account","ok":false,"error":"account 88231 not found"}"#,
        r#"{"type":"tool_result","name":"search","error":"timeout"}"#,
        r#"{"type":"tool_result","name":"search","error":""}"#,
        r#"{"type":"tool_result","name":"search","ok":true,"output":"…"}"#,
        r#"{"type":"feedback","from":"user","rating":-1,"text":"Please never schedule calls before 10am"}"#,
        r#"{"type":"feedback","from":"grader","rating":0.75}"#,
        r#"{"type":"feedback","from":"reviewer","rating":null,"text":"ok"}"#,
        r#"{"type":"feedback","from":"auditor","rating":1,"text":"?"}"#,
        r#"{"type":"outcome","ts":"2026-11-19T11:00:00Z","success":true,"score":0.9,"labels":["resolved"]}"#,
        r#"{"type":"outcome"}"#,
    ];
    let path = dir.write("s.jsonl", &transcript(&lines.map(String::from)));
    let (records, counts, _) = read_one(&path);
    assert_eq!(counts.skipped, 0);
    assert_eq!(
        records,
        [
            Rec::Message(Role::System, "be brief".into(), Some(ts("2026-11-19T09:00:03Z"))),
            Rec::Message(Role::Assistant, "kept without a time".into(), None),
            Rec::ToolCall("lookup_account".into()),
            Rec::ToolResult("lookup_account".into(), false, Some("account 88231 not found".into())),
            Rec::ToolResult("search".into(), false, Some("timeout".into())),
            Rec::ToolResult("search".into(), true, None),
            Rec::ToolResult("search".into(), true, None),
            Rec::Feedback(
                "user".into(),
                Some(-1.0),
                "Please never schedule calls before 10am".into()
            ),
            Rec::Feedback("grader".into(), Some(0.75), String::new()),
            Rec::Feedback("reviewer".into(), None, "ok".into()),
            // An unknown source stays what it says; it is trusted only if the Agent lists it.
            Rec::Feedback("auditor".into(), Some(1.0), "?".into()),
            Rec::Outcome(Some(true), Some(0.9)),
            Rec::Outcome(None, None),
        ]
    );
}

#[test]
fn tool_records_carry_their_timestamps() {
    let line = br#"{"type":"tool_call","ts":"2026-11-19T10:00:04Z","name":"x"}"#;
    let parsed = Line::parse(line).expect("valid");
    assert_eq!(
        parsed.record(),
        Ok(Some(Record::ToolCall {
            name: "x",
            values: &[],
            ts: Some(ts("2026-11-19T10:00:04Z"))
        }))
    );
}

#[test]
fn tool_call_inputs_keep_only_hashes_of_data_like_values() {
    let line = br##"{"type":"tool_call","name":"find","input":{"email":"A.B@example.com","zip":19122,"note":"hello there","ids":["#W123",{"deep":"x9"}],"ok":true}}"##;
    let parsed = Line::parse(line).expect("valid");
    let Ok(Some(Record::ToolCall { values, .. })) = parsed.record() else {
        panic!("a tool call");
    };
    let expected: Vec<u64> = ["a.b@example.com", "19122", "w123", "x9"]
        .iter()
        .map(|t| super::data_token_hash(t).unwrap())
        .collect();
    assert_eq!(values, expected.as_slice());
    // What a customer types matches what the agent passed.
    assert_eq!(super::data_token_hash("#W123."), super::data_token_hash("w123"));
    assert_eq!(super::data_token_hash("hello"), None);
}

fn many_lines(n: usize) -> Vec<u8> {
    let mut lines = vec![header("s-big", "2026-11-19T10:00:00Z")];
    lines.extend((0..n).map(|i| user(&format!("message number {i} with some padding to make it longer"))));
    transcript(&lines)
}

#[test]
fn a_truncated_gzip_keeps_what_was_read_and_the_next_file_is_still_read() {
    let dir = TempDir::new("truncated-gz");
    let full = gzip(&many_lines(5_000));
    dir.write("a-truncated.jsonl.gz", &full[..full.len() / 2]);
    dir.write(
        "b-next.jsonl",
        &transcript(&[header("s-next", "2026-11-19T11:00:00Z"), user("after")]),
    );

    let mut selection = discover(dir.path(), &settings()).expect("discover");
    assert_eq!(ids(&selection), ["s-big", "s-next"]);
    let mut visitor = Collect::default();
    stream(&selection.sessions, &mut visitor, &mut selection.stats);

    let stats = &selection.stats;
    assert_eq!(visitor.ids(), ["s-big", "s-next"]);
    assert_eq!(visitor.ends, 2);
    let kept = visitor.sessions[0].1.len();
    assert!(kept > 100 && kept < 5_000, "kept {kept} records before the damage");
    assert_eq!(visitor.sessions[1].1.len(), 1);
    assert_eq!(stats.sessions_read, 2);
    assert_eq!(stats.lines_skipped, 0, "the cut line is dropped, not counted");
    assert_eq!(stats.files_skipped.len(), 1);
    assert!(stats.files_skipped[0].path.ends_with("a-truncated.jsonl.gz"));
    assert_eq!(
        stats.files_skipped[0].reason,
        format!("truncated gzip after {} lines", kept + 1)
    );
}

#[test]
fn a_corrupt_gzip_is_reported_after_the_lines_it_delivered() {
    let dir = TempDir::new("corrupt-gz");
    let mut bytes = gzip(&many_lines(5_000));
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let path = dir.write("s.jsonl.gz", &bytes);
    let (records, counts, stats) = read_one(&path);
    assert!(records.len() < 5_000);
    assert_eq!(stats.files_skipped.len(), 1);
    let reason = &stats.files_skipped[0].reason;
    assert!(
        reason.starts_with(&format!("corrupt gzip after {} lines", counts.lines))
            || reason == &format!("truncated gzip after {} lines", counts.lines),
        "{reason}"
    );
}

#[test]
fn concatenated_gzip_members_are_read_whole() {
    let dir = TempDir::new("multi-gz");
    let mut bytes = gzip(&transcript(&[header("s-1", "2026-11-19T10:00:00Z"), user("one")]));
    bytes.extend(gzip(&transcript(&[user("two")])));
    let path = dir.write("s-1.jsonl.gz", &bytes);
    let (records, counts, stats) = read_one(&path);
    assert_eq!(records.len(), 2);
    assert_eq!(counts.lines, 3);
    assert!(stats.files_skipped.is_empty(), "{:?}", stats.files_skipped);
}

#[test]
fn a_file_gone_before_streaming_is_reported_and_not_visited() {
    let dir = TempDir::new("vanished");
    let path = dir.write(
        "s-1.jsonl",
        &transcript(&[header("s-1", "2026-11-19T10:00:00Z"), user("x")]),
    );
    dir.write(
        "s-2.jsonl",
        &transcript(&[header("s-2", "2026-11-19T11:00:00Z"), user("y")]),
    );
    let mut selection = discover(dir.path(), &settings()).expect("discover");
    fs::remove_file(&path).expect("remove");
    let mut visitor = Collect::default();
    stream(&selection.sessions, &mut visitor, &mut selection.stats);
    assert_eq!(visitor.ids(), ["s-2"]);
    assert_eq!(selection.stats.sessions_read, 1);
    assert_eq!(selection.stats.files_skipped.len(), 1);
    assert!(selection.stats.files_skipped[0].reason.starts_with("unreadable: "));
}

#[test]
fn a_byte_order_mark_before_the_first_line_is_ignored() {
    let dir = TempDir::new("bom");
    let mut content = b"\xEF\xBB\xBF".to_vec();
    content.extend(transcript(&[header("s-bom", "2026-11-19T10:00:00Z"), user("hi")]));
    dir.write("s.jsonl", &content);
    let mut content = b"\xEF\xBB\xBF".to_vec();
    content.extend(transcript(&[user("no header, BOM")]));
    dir.write_gz("s-gz-bom.jsonl.gz", &content);

    let mut selection = discover(dir.path(), &settings()).expect("discover");
    let mut found = ids(&selection);
    found.sort();
    assert_eq!(found, ["s-bom", "s-gz-bom"]);
    let mut visitor = Collect::default();
    stream(&selection.sessions, &mut visitor, &mut selection.stats);
    assert_eq!(visitor.records(), 2);
    assert_eq!(selection.stats.lines_skipped, 0);
}

#[test]
fn an_overlong_line_is_skipped_without_being_buffered() {
    let mut content = b"{\"a\":1}\n".to_vec();
    content.extend(std::iter::repeat_n(b'x', 10_000));
    content.extend_from_slice(b"\n{\"b\":2}\n");
    let mut buffer = Vec::new();
    let mut lines = Lines::with_max(&content[..], &mut buffer, 100);
    assert_eq!(lines.next().expect("read"), Next::Line);
    assert_eq!(lines.line(), b"{\"a\":1}\n");
    assert_eq!(lines.next().expect("read"), Next::TooLong);
    assert_eq!(lines.next().expect("read"), Next::Line);
    assert_eq!(lines.line(), b"{\"b\":2}\n");
    assert_eq!(lines.next().expect("read"), Next::Eof);
    assert_eq!(lines.bytes, content.len() as u64);
    assert!(buffer.capacity() < 1_000, "the long line was never held");
}

#[test]
fn transcript_names_and_stems() {
    assert_eq!(
        reader::transcript_kind(Path::new("a/s.jsonl")),
        Some(reader::Compression::None)
    );
    assert_eq!(
        reader::transcript_kind(Path::new("s.jsonl.gz")),
        Some(reader::Compression::Gzip)
    );
    assert_eq!(reader::transcript_kind(Path::new("s.json")), None);
    assert_eq!(reader::transcript_kind(Path::new("s.jsonl.zst")), None);
    assert_eq!(reader::file_stem(Path::new("x/s-1.jsonl.gz")), "s-1");
    assert_eq!(reader::file_stem(Path::new("s.2.jsonl")), "s.2");
}

/// Lines a transcript might hold, for the property tests to cut and splice.
const SAMPLE_LINES: [&str; 9] = [
    r#"{"type":"session","id":"s-1","agent":"bot","started":"2026-11-19T10:00:00Z","labels":{"a":"b"}}"#,
    r#"{"type":"message","ts":"2026-11-19T10:00:03Z","role":"user","text":"I want to \"cancel\"\n"}"#,
    r#"{"type":"message","role":"assistant","text":"caf\u00e9 ok"}"#,
    r#"{"type":"tool_call","name":"lookup","input":{"email":"a@b.c","n":[1,2,{"x":null}]}}"#,
    r#"{"type":"tool_result","name":"lookup","ok":false,"error":"account 1 not found"}"#,
    r#"{"type":"feedback","from":"reviewer","rating":-1,"text":"never do that"}"#,
    r#"{"type":"outcome","success":true,"score":0.9,"labels":["resolved"]}"#,
    r#"{"type":"future_kind","payload":{"deep":[[[]]]}}"#,
    r#"{"type":"message","role":"user","text":5}"#,
];

/// A transcript-like byte string: sample lines, some mutated (a byte replaced, or cut short),
/// and raw junk, joined by newlines.
fn transcript_like() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => proptest::sample::select(&SAMPLE_LINES[..]).prop_map(|l| l.as_bytes().to_vec()),
        2 => (proptest::sample::select(&SAMPLE_LINES[..]), any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(l, at, byte)| {
                let mut bytes = l.as_bytes().to_vec();
                let i = at.index(bytes.len());
                bytes[i] = byte;
                bytes
            }),
        1 => (proptest::sample::select(&SAMPLE_LINES[..]), any::<prop::sample::Index>())
            .prop_map(|(l, at)| l.as_bytes()[..at.index(l.len())].to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join(&b'\n'))
}

/// Discovers and streams one file; checks the invariants that hold for any input.
fn check_any_input(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = TempDir::new("prop");
    dir.write(name, bytes);
    let mut selection = discover(dir.path(), &settings()).expect("a readable root never fails");
    prop_assert_eq!(selection.stats.files_found, 1);
    prop_assert_eq!(selection.sessions.len() + selection.stats.files_skipped.len(), 1);

    let mut visitor = Collect::default();
    let mut stats = selection.stats.clone();
    let mut counts = SessionCounts::default();
    for session in &selection.sessions {
        let c = read_session(session, &mut visitor, &mut stats, &mut Vec::new());
        counts = SessionCounts {
            lines: counts.lines + c.lines,
            records: counts.records + c.records,
            skipped: counts.skipped + c.skipped,
            ignored: counts.ignored + c.ignored,
        };
    }
    prop_assert_eq!(counts.lines, counts.records + counts.skipped + counts.ignored);
    prop_assert_eq!(stats.lines_read, counts.lines);
    prop_assert_eq!(stats.lines_skipped, counts.skipped);
    prop_assert_eq!(visitor.records() as u64, counts.records);
    prop_assert_eq!(visitor.ends as u64, stats.sessions_read);
    prop_assert!(!visitor.open);

    // The public entry point agrees with the per-session one.
    let mut public = Collect::default();
    stream(&selection.sessions, &mut public, &mut selection.stats);
    prop_assert_eq!(&selection.stats, &stats);
    prop_assert_eq!(public.sessions, visitor.sessions);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024), cut in any::<prop::sample::Index>()) {
        check_any_input("s.jsonl", &bytes)?;
        // Not gzip at all, a gzip stream of garbage, and that stream cut short.
        check_any_input("s.jsonl.gz", &bytes)?;
        let compressed = gzip(&bytes);
        check_any_input("s.jsonl.gz", &compressed)?;
        check_any_input("s.jsonl.gz", &compressed[..cut.index(compressed.len() + 1)])?;
    }

    #[test]
    fn no_panic_on_damaged_transcripts(bytes in transcript_like(), cut in any::<prop::sample::Index>()) {
        check_any_input("s.jsonl", &bytes)?;
        let compressed = gzip(&bytes);
        check_any_input("s.jsonl.gz", &compressed)?;
        check_any_input("s.jsonl.gz", &compressed[..cut.index(compressed.len() + 1)])?;
    }
}
