//! Opening a transcript (plain or gzip) and splitting it into lines with bounded memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// Read buffer per open file. Large enough that the per-`read` syscall cost disappears against
/// parsing; small enough to be irrelevant to peak memory.
const READ_BUFFER: usize = 256 * 1024;

/// The longest line kept. A longer one (a runaway tool output, or a binary file with no
/// newline) is skipped by scanning to its end without buffering it, so memory does not grow with
/// the input. Real transcript lines with large tool outputs stay far below this.
pub(super) const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// Capacity the line buffer is returned to after an unusually long line, so that one large line
/// does not pin its size for the rest of the pass.
const LINE_BUFFER_KEEP: usize = 1024 * 1024;

/// A byte order mark some Windows tools put before UTF-8 text; JSON parsers reject it, so the
/// first line of a file is read without it.
pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether a path names a transcript, and whether it is compressed.
pub(super) fn transcript_kind(path: &Path) -> Option<Compression> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".jsonl") {
        Some(Compression::None)
    } else if name.ends_with(".jsonl.gz") {
        Some(Compression::Gzip)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
}

/// The file name without `.jsonl` / `.jsonl.gz`: a session's id when its header has none.
pub(super) fn file_stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let stem = name
        .strip_suffix(".jsonl.gz")
        .or_else(|| name.strip_suffix(".jsonl"))
        .unwrap_or(&name);
    stem.to_string()
}

/// Opens a transcript for reading its uncompressed bytes. `MultiGzDecoder` because `gzip`
/// appends members (`gzip -c part >> s.jsonl.gz`), and a rotated log may be written that way.
pub(super) fn open(path: &Path, compression: Compression, buffer: usize) -> io::Result<Box<dyn BufRead>> {
    let file = File::open(path)?;
    Ok(match compression {
        Compression::None => Box::new(BufReader::with_capacity(buffer, file)),
        Compression::Gzip => Box::new(BufReader::with_capacity(buffer, MultiGzDecoder::new(file))),
    })
}

/// Opens a transcript for streaming all of it.
pub(super) fn open_for_stream(path: &Path, compression: Compression) -> io::Result<Box<dyn BufRead>> {
    open(path, compression, READ_BUFFER)
}

/// What [`Lines::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A line is in [`Lines::line`] (its `\n` included, if it had one).
    Line,
    /// A line longer than the limit ([`MAX_LINE_BYTES`]), consumed and dropped.
    TooLong,
    Eof,
}

/// Splits a reader into lines, reusing one buffer; counts the bytes consumed.
pub(super) struct Lines<'b, R> {
    reader: R,
    line: &'b mut Vec<u8>,
    max: usize,
    first: bool,
    /// Uncompressed bytes consumed, partial lines before an error included.
    pub bytes: u64,
}

impl<'b, R: BufRead> Lines<'b, R> {
    pub(super) fn new(reader: R, line: &'b mut Vec<u8>) -> Self {
        Self {
            reader,
            line,
            max: MAX_LINE_BYTES,
            first: true,
            bytes: 0,
        }
    }

    #[cfg(test)]
    pub(super) fn with_max(reader: R, line: &'b mut Vec<u8>, max: usize) -> Self {
        Self {
            reader,
            line,
            max,
            first: true,
            bytes: 0,
        }
    }

    pub(super) fn line(&self) -> &[u8] {
        self.line
    }

    /// The next line (the first without a UTF-8 byte order mark). On an error the bytes read so far are counted and the partial line dropped.
    pub(super) fn next(&mut self) -> io::Result<Next> {
        if self.line.capacity() > LINE_BUFFER_KEEP {
            *self.line = Vec::with_capacity(LINE_BUFFER_KEEP);
        }
        self.line.clear();
        let limit = self.max as u64;
        let read = (&mut self.reader).take(limit).read_until(b'\n', self.line);
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.bytes += self.line.len() as u64;
                self.line.clear();
                return Err(e);
            }
        };
        self.bytes += n as u64;
        if n == 0 {
            return Ok(Next::Eof);
        }
        if n as u64 == limit && self.line.last() != Some(&b'\n') {
            self.line.clear();
            self.bytes += self.reader.skip_until(b'\n')? as u64;
            return Ok(Next::TooLong);
        }
        if std::mem::take(&mut self.first) && self.line.starts_with(UTF8_BOM) {
            self.line.drain(..UTF8_BOM.len());
        }
        Ok(Next::Line)
    }
}

/// Whether a line holds only JSON whitespace: such lines are not counted at all.
pub(super) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| is_json_whitespace(b))
}

pub(super) fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}
