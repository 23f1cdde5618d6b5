//! Transcripts in the formats agents actually write, converted into session records as they
//! are read (docs: `docs/formats.md`).
//!
//! One module per format. Each is an [`Importer`]: it is handed the input one JSON record at a
//! time (a JSONL line, or an element of a JSON document's record list) and tells an
//! [`ImportSink`] what it found: a session starts with what the format says about it, its
//! records follow in order, it ends. Formats that keep one session per file stream straight to
//! the sink; formats that interleave sessions (OpenTelemetry spans) buffer per session and emit
//! each whole, in a stable order, when the input ends.
//!
//! Everything in a transcript is hostile input: an importer never panics, never trusts a shape
//! it has not checked, and counts what it could not use instead of failing the file.

mod claude_code;
mod codex;
mod content;
pub(super) mod detect;
mod managed_agents;
mod openai;
pub(crate) mod otlp;

pub use otlp::MEMORY_REVISION_ATTRIBUTE;
pub use otlp::SEMCONV_VERSION as OTEL_GENAI_SEMCONV_VERSION;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dream::model::{Record, Role};

/// A transcript format reverie reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// reverie's own session JSONL (`SESSIONS.md`), read by the zero-copy reader.
    #[default]
    Reverie,
    /// OpenAI Chat Completions messages and Responses API items.
    Openai,
    /// Claude Code's `~/.claude/projects/<project>/<session>.jsonl`.
    ClaudeCode,
    /// Codex CLI rollouts (`session_meta`, `response_item`, `event_msg` lines).
    Codex,
    /// OpenTelemetry GenAI spans in OTLP/JSON, as the Collector's file exporter writes them.
    Otlp,
    /// Managed-Agents-style session events (`user.message`, `agent.tool_use`, …).
    ManagedAgents,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Reverie,
        Format::Openai,
        Format::ClaudeCode,
        Format::Codex,
        Format::Otlp,
        Format::ManagedAgents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Reverie => "reverie",
            Format::Openai => "openai",
            Format::ClaudeCode => "claude-code",
            Format::Codex => "codex",
            Format::Otlp => "otlp",
            Format::ManagedAgents => "managed-agents",
        }
    }

    /// The importer of this format (`None` for reverie's own, which has its own reader).
    pub(super) fn importer(self) -> Option<Box<dyn Importer>> {
        Some(match self {
            Format::Reverie => return None,
            Format::Openai => Box::new(openai::OpenAi::default()),
            Format::ClaudeCode => Box::new(claude_code::ClaudeCode::default()),
            Format::Codex => Box::new(codex::Codex::default()),
            Format::Otlp => Box::new(otlp::Otlp::default()),
            Format::ManagedAgents => Box::new(managed_agents::ManagedAgents::default()),
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which formats a pass reads: `auto` detects each file's, anything else reads only that one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatChoice {
    #[default]
    Auto,
    Only(Format),
}

impl FromStr for FormatChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(FormatChoice::Auto);
        }
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .map(FormatChoice::Only)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown transcript format {s:?}: expected auto, {}", names.join(", "))
            })
    }
}

impl fmt::Display for FormatChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatChoice::Auto => f.write_str("auto"),
            FormatChoice::Only(format) => format.fmt(f),
        }
    }
}

/// What a format says about one session before its records. Whatever is missing falls back as
/// for a header-less reverie session: the file name (plus the session's place in the file when
/// a file holds several) and the file's modification time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionHeader {
    pub id: Option<String>,
    pub agent: Option<String>,
    pub started: Option<Timestamp>,
    pub labels: BTreeMap<String, String>,
}

/// A record an importer built: the owned twin of [`Record`], handed to sinks by reference.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedRecord {
    Message {
        role: Role,
        text: String,
        ts: Option<Timestamp>,
    },
    ToolCall {
        name: String,
        values: Vec<u64>,
        ts: Option<Timestamp>,
    },
    ToolResult {
        name: String,
        ok: bool,
        error: Option<String>,
        ts: Option<Timestamp>,
    },
    Feedback {
        from: String,
        rating: Option<f64>,
        text: String,
        ts: Option<Timestamp>,
    },
    Outcome {
        success: Option<bool>,
        score: Option<f64>,
        ts: Option<Timestamp>,
    },
}

impl OwnedRecord {
    pub fn as_record(&self) -> Record<'_> {
        match self {
            OwnedRecord::Message { role, text, ts } => Record::Message {
                role: *role,
                text,
                ts: *ts,
            },
            OwnedRecord::ToolCall { name, values, ts } => Record::ToolCall { name, values, ts: *ts },
            OwnedRecord::ToolResult { name, ok, error, ts } => Record::ToolResult {
                name,
                ok: *ok,
                error: error.as_deref(),
                ts: *ts,
            },
            OwnedRecord::Feedback { from, rating, text, ts } => Record::Feedback {
                from,
                rating: *rating,
                text,
                ts: *ts,
            },
            OwnedRecord::Outcome { success, score, ts } => Record::Outcome {
                success: *success,
                score: *score,
                ts: *ts,
            },
        }
    }
}

/// Tool names by call id: a result names only its call's id (Chat `tool_call_id`, Responses
/// `call_id`, Anthropic `tool_use_id`), and a dream counts failures per tool.
#[derive(Debug, Default)]
pub(super) struct Calls(std::collections::HashMap<String, String>);

/// Tool results whose call was never seen are counted against this name.
pub(super) const UNKNOWN_TOOL: &str = "unknown";

impl Calls {
    pub fn remember(&mut self, id: Option<&str>, name: &str) {
        if let Some(id) = id {
            self.0.insert(id.to_string(), name.to_string());
        }
    }

    /// The tool `id` called, else [`UNKNOWN_TOOL`].
    pub fn name_of(&self, id: Option<&str>) -> String {
        id.and_then(|id| self.0.get(id))
            .map_or_else(|| UNKNOWN_TOOL.to_string(), String::clone)
    }
}

/// Whether the reader should go on: a sink that has what it needs (the first session's header,
/// or the one session it was asked for) stops the import early.
pub type Flow = ControlFlow<()>;

/// Receives what an importer finds. Sessions never interleave: `start`, records, `end`.
pub trait ImportSink {
    fn start(&mut self, header: SessionHeader) -> Flow;
    fn record(&mut self, record: &OwnedRecord);
    fn end(&mut self) -> Flow;
}

/// What became of one input record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    /// It carried at least one session record, or a session's header.
    Read,
    /// Valid, but nothing a dream uses (token counts, snapshots, a status change).
    Ignored,
    /// Not of the format's shape: counted in `lines_skipped`.
    Malformed,
}

/// One format's conversion, fed record by record.
pub(super) trait Importer {
    /// Handles one input record (a JSONL line, or an element of a JSON document's list).
    fn record(&mut self, value: Value, sink: &mut dyn ImportSink) -> (Used, Flow);

    /// Handles a whole JSON document (a `.json` file). By default its records are the root
    /// array's elements, or those of the `data` array of a page as list endpoints return it.
    fn document(&mut self, value: Value, sink: &mut dyn ImportSink) -> Counts {
        let records = match value {
            Value::Array(items) => items,
            Value::Object(mut page) => match page.remove("data") {
                Some(Value::Array(items)) => items,
                _ => return Counts::one(self.record(Value::Object(page), sink).0),
            },
            _ => return Counts::one(Used::Malformed),
        };
        let mut counts = Counts::default();
        for record in records {
            let (used, flow) = self.record(record, sink);
            counts.add(used);
            if flow.is_break() {
                return counts;
            }
        }
        self.finish(sink);
        counts
    }

    /// The input ended: emit what is buffered and end the open session.
    fn finish(&mut self, sink: &mut dyn ImportSink);
}

/// Input records seen and skipped while importing one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub malformed: u64,
}

impl Counts {
    fn one(used: Used) -> Self {
        let mut counts = Counts::default();
        counts.add(used);
        counts
    }

    pub fn add(&mut self, used: Used) {
        self.records += 1;
        if used == Used::Malformed {
            self.malformed += 1;
        }
    }
}

/// A session being assembled by a streaming importer: its header is sent when the first record
/// that settles it arrives, and it is ended exactly once.
#[derive(Debug, Default)]
pub(super) struct Open {
    started: bool,
    stopped: bool,
}

impl Open {
    /// Starts the session with `header` unless it already started. Returns the sink's answer
    /// (`Break` once the sink said it has enough: nothing more is sent).
    pub fn start(&mut self, header: impl FnOnce() -> SessionHeader, sink: &mut dyn ImportSink) -> Flow {
        if self.stopped {
            return Flow::Break(());
        }
        if !self.started {
            self.started = true;
            if sink.start(header()).is_break() {
                self.stopped = true;
                return Flow::Break(());
            }
        }
        Flow::Continue(())
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    pub fn record(&mut self, record: &OwnedRecord, sink: &mut dyn ImportSink) {
        if self.started && !self.stopped {
            sink.record(record);
        }
    }

    /// Ends the session if it started; later calls do nothing.
    pub fn end(&mut self, sink: &mut dyn ImportSink) -> Flow {
        if !self.started || self.stopped {
            return if self.stopped {
                Flow::Break(())
            } else {
                Flow::Continue(())
            };
        }
        self.stopped = true;
        sink.end()
    }
}
