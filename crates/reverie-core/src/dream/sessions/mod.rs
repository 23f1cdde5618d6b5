//! Reading session transcripts (docs: `SESSIONS.md`): which sessions a pass looks at
//! ([`discover`]), and streaming their records to the next stage ([`stream`]).
//!
//! Two passes on purpose. Selection needs only each file's first line (id, agent, start, labels),
//! so [`discover`] reads nothing else, and a lookback of 50 sessions among 100 000 files costs
//! 100 000 first lines, not 100 000 transcripts. [`stream`] then reads the chosen sessions in full,
//! one line at a time, handing borrowed [`Record`]s to a [`SessionVisitor`]: memory stays flat
//! however large the transcripts are, and nothing is allocated for a line whose strings have no
//! escapes.
//!
//! Bad input is never fatal: a file that is not a session is reported in
//! [`ReadStats::files_skipped`], a bad line is counted in [`ReadStats::lines_skipped`], a truncated
//! gzip keeps what was read before the damage. Only a missing or unreadable root is an error,
//! because then the pass would silently look at nothing.
//!
//! [`Record`]: crate::dream::model::Record

pub mod import;
mod imported;
mod line;
pub use import::{Format, FormatChoice};
pub use line::data_token_hash;
mod reader;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use walkdir::WalkDir;

use crate::dream::model::{DreamSettings, ReadStats, SessionMeta, SessionVisitor, SkippedFile, labelled_revision};

use line::{Header, Line, Malformed, NotASession};
use reader::{Compression, Lines, Next};

/// The sessions a pass will read, oldest first, and what was found on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Chosen by the lookback, in ascending `started` order (ties: id, then path).
    pub sessions: Vec<SessionMeta>,
    /// `files_found` and `files_skipped` so far; [`stream`] adds the rest.
    pub stats: ReadStats,
}

/// Why sessions could not be looked at, at all.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("sessions directory {} does not exist", .path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read sessions directory {}: {source}", .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
}

/// Finds the transcripts under `root` and chooses the sessions a pass reads.
///
/// Walks nested folders, following symbolic links (loops are detected and not followed) and
/// skipping hidden entries below the root: Kubernetes mounts ConfigMaps and projected volumes as
/// `..data/` plus symlinks to it, and reading both would count every session twice. For the same
/// reason a file reached by two paths is taken once (by device and inode).
///
/// Each `*.jsonl` / `*.jsonl.gz` file contributes its first non-blank line only; see
/// [`SessionMeta`] for the fallbacks. The lookback of `settings` is applied as files are read:
/// sessions older than `max_age` (before `now - max_age`) are dropped, the label selector must
/// match, and only the `lookback_sessions` most recent are kept, so memory follows the lookback,
/// not the number of files.
pub fn discover(root: &Path, settings: &DreamSettings) -> Result<Selection, SessionsError> {
    match std::fs::metadata(root) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SessionsError::NotFound {
                path: root.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(SessionsError::Unreadable {
                path: root.to_path_buf(),
                source,
            });
        }
    }

    let mut stats = ReadStats::default();
    let mut lookback = Lookback::new(settings);
    let mut seen = HashSet::new();
    // Sorted so that `files_skipped`, and which path of a file linked twice is kept, are the same
    // on every run.
    let walk = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            // A loop is a second path to something already walked: nothing is lost.
            Err(e) if e.loop_ancestor().is_some() => continue,
            Err(e) if e.depth() == 0 => {
                let source = e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed"));
                return Err(SessionsError::Unreadable {
                    path: root.to_path_buf(),
                    source,
                });
            }
            Err(e) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                if candidate(&path, settings.format).is_some() {
                    stats.files_found += 1;
                }
                stats
                    .files_skipped
                    .push(skipped(&path, format!("unreadable: {}", io_cause(&e))));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Some((container, compression)) = candidate(entry.path(), settings.format) else {
            continue;
        };
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(e) => {
                stats.files_found += 1;
                stats
                    .files_skipped
                    .push(skipped(entry.path(), format!("unreadable: {}", io_cause(&e))));
                continue;
            }
        };
        if let Some(identity) = file_identity(&metadata)
            && !seen.insert(identity)
        {
            continue;
        }
        stats.files_found += 1;
        match read_metas(entry.path(), container, compression, &metadata, settings.format) {
            Ok(metas) => metas.into_iter().for_each(|meta| lookback.offer(meta)),
            Err(reason) => stats.files_skipped.push(skipped(entry.path(), reason)),
        }
    }

    Ok(Selection {
        sessions: lookback.into_sessions(),
        stats,
    })
}

/// Streams the records of `sessions`, in order, to `visitor`: for each session `start_session`,
/// `record` for every usable line, `end_session`. Adds to `stats` (`sessions_read`, `lines_read`,
/// `lines_skipped`, `bytes_read` uncompressed, and `files_skipped` for a file that vanished or
/// whose gzip stream is damaged; the records before the damage have been delivered).
///
/// Blank lines are not counted. Every other line is either a record, skipped (malformed, counted
/// in `lines_skipped`), or ignored: the `session` header, an unknown `type` or message `role`.
pub fn stream<V: SessionVisitor + ?Sized>(sessions: &[SessionMeta], visitor: &mut V, stats: &mut ReadStats) {
    let mut line = Vec::with_capacity(64 * 1024);
    for session in sessions {
        if session.format == Format::Reverie {
            read_session(session, visitor, stats, &mut line);
        } else {
            imported::stream_session(session, visitor, stats);
        }
    }
}

/// Whether `path` may hold transcripts a pass reading `choice` looks at: JSONL always, JSON
/// documents unless only reverie's own format is read (it has none).
fn candidate(path: &Path, choice: FormatChoice) -> Option<(imported::Container, Compression)> {
    let found = imported::container_of(path)?;
    if choice == FormatChoice::Only(Format::Reverie) && found.0 == imported::Container::Document {
        return None;
    }
    Some(found)
}

/// The sessions a file holds. reverie's own JSONL is tried first (the common case, and the
/// cheapest: its first line says it all); with `auto`, a file it does not recognise goes to the
/// importer of the format its first record (or root) shows, and a file nothing recognises is
/// skipped with the reader's reason. A chosen format reads every file as that format.
fn read_metas(
    path: &Path,
    container: imported::Container,
    compression: Compression,
    metadata: &std::fs::Metadata,
    choice: FormatChoice,
) -> Result<Vec<SessionMeta>, String> {
    let format = match (choice, container) {
        (FormatChoice::Only(Format::Reverie), _) => return read_meta(path, compression, metadata).map(|m| vec![m]),
        (FormatChoice::Only(format), _) => format,
        (FormatChoice::Auto, imported::Container::Lines) => match read_meta(path, compression, metadata) {
            Ok(meta) => return Ok(vec![meta]),
            Err(reason) => match first_record(path, compression)
                .as_ref()
                .and_then(import::detect::first_record)
            {
                Some(format) if format != Format::Reverie => format,
                _ => return Err(reason),
            },
        },
        (FormatChoice::Auto, imported::Container::Document) => {
            match imported::document(path, compression)
                .as_ref()
                .map(import::detect::document)
            {
                Ok(Some(format)) if format != Format::Reverie => format,
                Ok(_) => return Err("not a transcript: a JSON document of no known format".to_string()),
                Err(reason) => return Err(reason.clone()),
            }
        }
    };
    imported::metas(path, container, compression, format, metadata)
}

/// The first non-blank line of a JSONL file as JSON, if it is JSON.
fn first_record(path: &Path, compression: Compression) -> Option<serde_json::Value> {
    let input = reader::open(path, compression, 64 * 1024).ok()?;
    let mut buffer = Vec::new();
    let mut lines = Lines::new(input, &mut buffer);
    loop {
        match lines.next().ok()? {
            Next::Line if reader::is_blank(lines.line()) => continue,
            Next::Line => return serde_json::from_slice(lines.line()).ok(),
            Next::TooLong | Next::Eof => return None,
        }
    }
}

/// Per-session line counts; `lines == records + skipped + ignored` always holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SessionCounts {
    lines: u64,
    records: u64,
    skipped: u64,
    ignored: u64,
}

fn read_session<V: SessionVisitor + ?Sized>(
    session: &SessionMeta,
    visitor: &mut V,
    stats: &mut ReadStats,
    line: &mut Vec<u8>,
) -> SessionCounts {
    let mut counts = SessionCounts::default();
    let compression = reader::transcript_kind(&session.path).unwrap_or(Compression::None);
    let input = match reader::open_for_stream(&session.path, compression) {
        Ok(input) => input,
        Err(e) => {
            stats
                .files_skipped
                .push(skipped(&session.path, format!("unreadable: {e}")));
            return counts;
        }
    };
    visitor.start_session(session);
    stats.sessions_read += 1;
    let mut lines = Lines::new(input, line);
    loop {
        match lines.next() {
            Ok(Next::Eof) => break,
            Ok(Next::TooLong) => {
                counts.lines += 1;
                counts.skipped += 1;
            }
            Ok(Next::Line) => {
                let bytes = lines.line();
                if reader::is_blank(bytes) {
                    continue;
                }
                counts.lines += 1;
                let parsed = Line::parse(bytes);
                match parsed.as_ref().map(Line::record) {
                    Ok(Ok(Some(record))) => {
                        counts.records += 1;
                        visitor.record(record);
                    }
                    Ok(Ok(None)) => counts.ignored += 1,
                    Ok(Err(_)) | Err(_) => counts.skipped += 1,
                }
            }
            Err(e) => {
                let reason = match (compression, e.kind()) {
                    (Compression::Gzip, io::ErrorKind::UnexpectedEof) => {
                        format!("truncated gzip after {} lines", counts.lines)
                    }
                    (Compression::Gzip, _) => format!("corrupt gzip after {} lines: {e}", counts.lines),
                    (Compression::None, _) => format!("read error after {} lines: {e}", counts.lines),
                };
                stats.files_skipped.push(skipped(&session.path, reason));
                break;
            }
        }
    }
    stats.bytes_read += lines.bytes;
    stats.lines_read += counts.lines;
    stats.lines_skipped += counts.skipped;
    visitor.end_session();
    counts
}

/// Reads the first non-blank line of a transcript into its [`SessionMeta`], or says why the file
/// is not a session. Only as much of the file (or gzip stream) as that line needs is read.
fn read_meta(path: &Path, compression: Compression, metadata: &std::fs::Metadata) -> Result<SessionMeta, String> {
    let describe = |e: io::Error| match compression {
        Compression::Gzip if e.kind() == io::ErrorKind::UnexpectedEof => {
            "truncated gzip before the first line".to_string()
        }
        Compression::Gzip => format!("not a readable gzip stream: {e}"),
        Compression::None => format!("unreadable: {e}"),
    };
    let mut input = reader::open(path, compression, 16 * 1024).map_err(describe)?;
    if input.fill_buf().map_err(describe)?.starts_with(reader::UTF8_BOM) {
        input.consume(reader::UTF8_BOM.len());
    }
    // Look at the first non-whitespace byte before buffering a line, so that a binary file or a
    // text file with no newline is rejected without reading it whole.
    loop {
        let available = input.fill_buf().map_err(describe)?;
        if available.is_empty() {
            return Err("not a session: the file is empty".to_string());
        }
        let blank = available.iter().take_while(|&&b| reader::is_json_whitespace(b)).count();
        if blank < available.len() {
            let first = available[blank];
            input.consume(blank);
            if first != b'{' {
                return Err(NotASession::Malformed(Malformed::NotObject).to_string());
            }
            break;
        }
        input.consume(blank);
    }
    let mut buffer = Vec::new();
    let mut lines = Lines::new(input, &mut buffer);
    let info = match lines.next().map_err(describe)? {
        Next::Line => Header::parse(lines.line()).map_err(|e| e.to_string())?,
        Next::TooLong => return Err(NotASession::Malformed(Malformed::TooLong).to_string()),
        Next::Eof => return Err("not a session: the file is empty".to_string()),
    };
    let started = info
        .started
        .or_else(|| metadata.modified().ok().and_then(|m| Timestamp::try_from(m).ok()))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    Ok(SessionMeta {
        id: info.id.unwrap_or_else(|| reader::file_stem(path)),
        agent: info.agent,
        started,
        memory_revision: info.memory_revision.or_else(|| labelled_revision(&info.labels)),
        labels: info.labels,
        path: path.to_path_buf(),
        bytes: metadata.len(),
        format: Format::Reverie,
    })
}

/// The most recent sessions of one agent kept in `roots` (each with its format, `None`: the
/// settings'): each root is discovered with the lookback of `settings`, then together the agent
/// keeps its `lookback_sessions` most recent, and one file per session id (the earliest
/// selected: evidence counts distinct sessions, and a session stored twice, say `s-1.jsonl` and
/// `s-1.jsonl.gz`, must count once). Adds what was found and skipped to `read`.
pub fn select_recent(
    roots: &[(&Path, Option<FormatChoice>)],
    settings: &DreamSettings,
    read: &mut ReadStats,
) -> Result<Vec<SessionMeta>, SessionsError> {
    let mut sessions = Vec::new();
    for (path, format) in roots {
        let selection = match format {
            Some(format) if *format != settings.format => discover(
                path,
                &DreamSettings {
                    format: *format,
                    ..settings.clone()
                },
            )?,
            _ => discover(path, settings)?,
        };
        read.files_found += selection.stats.files_found;
        read.files_skipped.extend(selection.stats.files_skipped);
        sessions.extend(selection.sessions);
    }
    if roots.len() > 1 {
        // Each root kept its most recent; together the agent keeps its most recent.
        sessions.sort_by(|a, b| (a.started, &a.id, &a.path).cmp(&(b.started, &b.id, &b.path)));
        let excess = sessions.len().saturating_sub(settings.lookback_sessions);
        sessions.drain(..excess);
    }
    let mut seen = HashSet::new();
    sessions.retain(|session| {
        let first = seen.insert(session.id.clone());
        if !first {
            read.files_skipped.push(SkippedFile {
                path: session.path.display().to_string(),
                reason: format!("duplicate of session {}: counted once", session.id),
            });
        }
        first
    });
    Ok(sessions)
}

/// The lookback, applied while discovering: age and labels filter each session as it is read,
/// and a min-heap keeps only the `lookback_sessions` most recent, so that memory follows the
/// lookback, not the number of files under the root.
struct Lookback<'s> {
    settings: &'s DreamSettings,
    cutoff: Option<Timestamp>,
    kept: BinaryHeap<Reverse<Recency>>,
}

/// A session ordered by recency: `started`, then id, then path (a total order, so the choice at
/// the lookback boundary never depends on the order files were found in).
struct Recency(SessionMeta);

impl Recency {
    fn key(&self) -> (Timestamp, &str, &Path) {
        (self.0.started, &self.0.id, &self.0.path)
    }
}

impl PartialEq for Recency {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Recency {}

impl PartialOrd for Recency {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Recency {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl<'s> Lookback<'s> {
    fn new(settings: &'s DreamSettings) -> Self {
        // A max age beyond the representable range cuts nothing.
        let cutoff = settings
            .max_age
            .and_then(|age| SignedDuration::try_from(age).ok())
            .and_then(|age| settings.now.checked_sub(age).ok());
        Self {
            settings,
            cutoff,
            kept: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, session: SessionMeta) {
        let recent_enough = self.cutoff.is_none_or(|cutoff| session.started >= cutoff);
        let labels_match = self.settings.label_selector.iter().all(|(key, value)| match value {
            Some(value) => session.labels.get(key) == Some(value),
            None => session.labels.contains_key(key),
        });
        if !recent_enough || !labels_match || self.settings.lookback_sessions == 0 {
            return;
        }
        self.kept.push(Reverse(Recency(session)));
        if self.kept.len() > self.settings.lookback_sessions {
            self.kept.pop();
        }
    }

    /// The kept sessions, oldest first.
    fn into_sessions(self) -> Vec<SessionMeta> {
        let mut kept: Vec<_> = self.kept.into_iter().map(|Reverse(r)| r).collect();
        kept.sort_unstable();
        kept.into_iter().map(|Recency(s)| s).collect()
    }
}

fn skipped(path: &Path, reason: String) -> SkippedFile {
    SkippedFile {
        path: path.display().to_string(),
        reason,
    }
}

/// The I/O cause of a walk error without walkdir's path prefix (the path is reported apart).
fn io_cause(e: &walkdir::Error) -> String {
    match e.io_error() {
        Some(io) => io.to_string(),
        None => e.to_string(),
    }
}

#[cfg(unix)]
fn file_identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn file_identity(_metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}
