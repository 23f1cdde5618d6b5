//! Discovering and streaming sessions held in other formats, through their importers.
//!
//! Discovery asks an importer for headers only: formats with one session per file stop after
//! the first; files that hold many (OpenTelemetry batches, conversation-per-line JSONL) are read
//! whole. Streaming reads a session's file again and forwards the one session asked for.

use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use super::import::{Counts, Flow, Format, ImportSink, Importer, OwnedRecord, SessionHeader};
use super::reader::{self, Compression, Lines, Next};
use crate::dream::model::{ReadStats, SessionMeta, SessionVisitor};

/// The largest JSON document read (a `.json` transcript is parsed whole; JSONL streams).
pub(super) const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// How a file holds its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Container {
    /// `.jsonl`: one record per line, streamed.
    Lines,
    /// `.json`: one document.
    Document,
}

/// The sessions `path` holds in `format`, or why none could be read.
pub(super) fn metas(
    path: &Path,
    container: Container,
    compression: Compression,
    format: Format,
    metadata: &std::fs::Metadata,
) -> Result<Vec<SessionMeta>, String> {
    let importer = format.importer().ok_or("reverie sessions have their own reader")?;
    let mut sink = Headers {
        stop_after_first: matches!(format, Format::ClaudeCode | Format::Codex | Format::ManagedAgents),
        headers: Vec::new(),
    };
    feed(importer, path, container, compression, &mut sink).map_err(|e| format!("unreadable: {e}"))?;
    if sink.headers.is_empty() {
        return Err(format!("no {format} session in it"));
    }
    let modified = metadata.modified().ok().and_then(|m| jiff::Timestamp::try_from(m).ok());
    let stem = stem(path);
    Ok(sink
        .headers
        .into_iter()
        .enumerate()
        .map(|(index, header)| SessionMeta {
            id: session_id(&header, &stem, index),
            agent: header.agent,
            started: header.started.or(modified).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            memory_revision: crate::dream::model::labelled_revision(&header.labels),
            labels: header.labels,
            path: path.to_path_buf(),
            bytes: metadata.len(),
            format,
        })
        .collect())
}

/// Streams the session `session` names from its file to `visitor`.
pub(super) fn stream_session<V: SessionVisitor + ?Sized>(
    session: &SessionMeta,
    visitor: &mut V,
    stats: &mut ReadStats,
) {
    let Some(importer) = session.format.importer() else {
        return;
    };
    let Some((container, compression)) = container_of(&session.path) else {
        return;
    };
    let mut sink = Forward {
        session,
        stem: stem(&session.path),
        index: 0,
        active: false,
        found: false,
        visitor,
    };
    match feed(importer, &session.path, container, compression, &mut sink) {
        Ok((counts, bytes)) => {
            stats.lines_read += counts.records;
            stats.lines_skipped += counts.malformed;
            stats.bytes_read += bytes;
        }
        Err(e) => stats
            .files_skipped
            .push(super::skipped(&session.path, format!("read error: {e}"))),
    }
    // Damage cut the session short: what was read before it counts, and the session is closed.
    if sink.active {
        sink.visitor.end_session();
    }
    if sink.found {
        stats.sessions_read += 1;
    } else {
        stats.files_skipped.push(super::skipped(
            &session.path,
            format!("session {} is no longer in the file", session.id),
        ));
    }
}

/// Whether a path may hold a transcript in some format, and how.
pub(super) fn container_of(path: &Path) -> Option<(Container, Compression)> {
    let name = path.file_name()?.to_str()?;
    if let Some(compression) = reader::transcript_kind(path) {
        return Some((Container::Lines, compression));
    }
    if name.ends_with(".json") {
        Some((Container::Document, Compression::None))
    } else if name.ends_with(".json.gz") {
        Some((Container::Document, Compression::Gzip))
    } else {
        None
    }
}

/// The id of the `index`-th session of a file: its own, else the file's name (with its place
/// in the file after the first), the same in discovery and streaming.
fn session_id(header: &SessionHeader, stem: &str, index: usize) -> String {
    match (&header.id, index) {
        (Some(id), _) => id.clone(),
        (None, 0) => stem.to_string(),
        (None, n) => format!("{stem}#{n}"),
    }
}

fn stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    [".jsonl.gz", ".jsonl", ".json.gz", ".json"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(&name)
        .to_string()
}

/// A `.json` transcript, parsed (for detecting its format).
pub(super) fn document(path: &Path, compression: Compression) -> Result<Value, String> {
    let bytes = document_bytes(path, compression).map_err(|e| format!("unreadable: {e}"))?;
    let text = bytes.strip_prefix(reader::UTF8_BOM).unwrap_or(&bytes);
    serde_json::from_slice(text).map_err(|e| format!("not a transcript: not a JSON document ({e})"))
}

/// The bytes of a JSON document, refused beyond [`MAX_DOCUMENT_BYTES`].
fn document_bytes(path: &Path, compression: Compression) -> io::Result<Vec<u8>> {
    let input = reader::open_for_stream(path, compression)?;
    let mut bytes = Vec::new();
    input.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(io::Error::other(format!(
            "a JSON document larger than {} MiB (write JSONL instead)",
            MAX_DOCUMENT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Runs `importer` over the file; returns the input records seen and the bytes read.
fn feed(
    mut importer: Box<dyn Importer>,
    path: &Path,
    container: Container,
    compression: Compression,
    sink: &mut dyn ImportSink,
) -> io::Result<(Counts, u64)> {
    match container {
        Container::Document => {
            let bytes = document_bytes(path, compression)?;
            let text = bytes.strip_prefix(reader::UTF8_BOM).unwrap_or(&bytes);
            let counts = match serde_json::from_slice::<Value>(text) {
                Ok(document) => importer.document(document, sink),
                Err(_) => Counts {
                    records: 1,
                    malformed: 1,
                },
            };
            Ok((counts, bytes.len() as u64))
        }
        Container::Lines => {
            let input = reader::open_for_stream(path, compression)?;
            let mut buffer = Vec::with_capacity(64 * 1024);
            let mut lines = Lines::new(input, &mut buffer);
            let mut counts = Counts::default();
            loop {
                match lines.next()? {
                    Next::Eof => break,
                    Next::TooLong => counts.add(super::import::Used::Malformed),
                    Next::Line => {
                        if reader::is_blank(lines.line()) {
                            continue;
                        }
                        let Ok(value) = serde_json::from_slice::<Value>(lines.line()) else {
                            counts.add(super::import::Used::Malformed);
                            continue;
                        };
                        let (used, flow) = importer.record(value, sink);
                        counts.add(used);
                        if flow.is_break() {
                            return Ok((counts, lines.bytes));
                        }
                    }
                }
            }
            importer.finish(sink);
            Ok((counts, lines.bytes))
        }
    }
}

/// Collects session headers (discovery).
struct Headers {
    stop_after_first: bool,
    headers: Vec<SessionHeader>,
}

impl ImportSink for Headers {
    fn start(&mut self, header: SessionHeader) -> Flow {
        self.headers.push(header);
        if self.stop_after_first {
            Flow::Break(())
        } else {
            Flow::Continue(())
        }
    }

    fn record(&mut self, _record: &OwnedRecord) {}

    fn end(&mut self) -> Flow {
        Flow::Continue(())
    }
}

/// Forwards one session to a visitor and stops after it (streaming).
struct Forward<'a, V: ?Sized> {
    session: &'a SessionMeta,
    stem: String,
    index: usize,
    active: bool,
    found: bool,
    visitor: &'a mut V,
}

impl<V: SessionVisitor + ?Sized> ImportSink for Forward<'_, V> {
    fn start(&mut self, header: SessionHeader) -> Flow {
        let id = session_id(&header, &self.stem, self.index);
        self.index += 1;
        if !self.found && id == self.session.id {
            self.found = true;
            self.active = true;
            self.visitor.start_session(self.session);
        }
        Flow::Continue(())
    }

    fn record(&mut self, record: &OwnedRecord) {
        if self.active {
            self.visitor.record(record.as_record());
        }
    }

    fn end(&mut self) -> Flow {
        if std::mem::take(&mut self.active) {
            self.visitor.end_session();
            return Flow::Break(());
        }
        Flow::Continue(())
    }
}
