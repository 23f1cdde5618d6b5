//! The data a dream pass works on, shared by its stages: sessions as read, candidate patterns
//! mined from them, lessons a reflector proposes, and the proposal that comes out.
//!
//! Stage by stage: `sessions` (read and select transcripts) → `signals` (mine and count
//! candidates) → `reflector` (turn candidates into lessons; verified) → `curate` (lessons and the
//! current memory into changes) → a [`Proposal`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::memory::EntryKind;

/// One session transcript as the selection stage knows it (from its first line and the file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// `id` of the `session` line, else the file name without `.jsonl` / `.jsonl.gz`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `started` of the `session` line, else the file's modification time.
    pub started: Timestamp,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub path: PathBuf,
    pub bytes: u64,
    /// The format the file was read in (its importer streams it again).
    #[serde(default, skip_serializing_if = "is_reverie")]
    pub format: crate::dream::sessions::Format,
    /// The memory revision the agent ran with: the `session` line's `memoryRevision`, else the
    /// label [`MEMORY_REVISION_LABEL`] (any format that carries labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_revision: Option<u64>,
}

/// The session label naming the memory revision the agent ran with.
pub const MEMORY_REVISION_LABEL: &str = "reverie.dev/memory-revision";

/// The memory revision a session's labels name: a plain decimal number, nothing else.
pub fn labelled_revision(labels: &BTreeMap<String, String>) -> Option<u64> {
    let value = labels.get(MEMORY_REVISION_LABEL)?;
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
}

fn is_reverie(format: &crate::dream::sessions::Format) -> bool {
    *format == crate::dream::sessions::Format::Reverie
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    System,
}

/// One line of a transcript, borrowed from the line buffer: the hot loop allocates nothing for
/// the records it skips.
#[derive(Clone, Debug, PartialEq)]
pub enum Record<'a> {
    Message {
        role: Role,
        text: &'a str,
        ts: Option<Timestamp>,
    },
    ToolCall {
        name: &'a str,
        /// Hashes of the data-like values in its `input` (see `sessions::data_token_hash`).
        values: &'a [u64],
        ts: Option<Timestamp>,
    },
    ToolResult {
        name: &'a str,
        ok: bool,
        error: Option<&'a str>,
        ts: Option<Timestamp>,
    },
    Feedback {
        /// `reviewer`, `operator`, `grader`, `user`, or whatever the writer put there (`user`
        /// when absent: the least authoritative reading).
        from: &'a str,
        /// -1, 0, 1, or a score.
        rating: Option<f64>,
        text: &'a str,
        ts: Option<Timestamp>,
    },
    Outcome {
        success: Option<bool>,
        score: Option<f64>,
        ts: Option<Timestamp>,
    },
}

/// Receives sessions as they are streamed, one at a time, records in order.
pub trait SessionVisitor {
    fn start_session(&mut self, session: &SessionMeta);
    fn record(&mut self, record: Record<'_>);
    fn end_session(&mut self);
}

/// What reading the sessions found, bad input included: nothing here is fatal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadStats {
    /// Transcript files found under the sessions root.
    pub files_found: u64,
    /// Sessions chosen by the lookback and read.
    pub sessions_read: u64,
    pub lines_read: u64,
    /// Lines that were not valid JSON objects of a known shape (counted, skipped).
    pub lines_skipped: u64,
    pub bytes_read: u64,
    /// Files that could not be used at all, with why (not a session, unreadable, truncated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_skipped: Vec<SkippedFile>,
}

/// A file that was not read as a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

/// What kind of pattern a candidate is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PatternKind {
    /// A failing tool result or negative feedback that recurs.
    #[default]
    Mistake,
    /// A rule users or reviewers keep stating.
    Preference,
    /// A tool-call sequence that recurs in successful sessions.
    Workflow,
    /// An action that goes with better outcomes than its absence.
    OutcomeCorrelation,
}

impl PatternKind {
    /// The memory entry kind a lesson of this pattern becomes.
    pub fn entry_kind(self) -> EntryKind {
        match self {
            PatternKind::Mistake | PatternKind::OutcomeCorrelation => EntryKind::Lesson,
            PatternKind::Preference => EntryKind::Preference,
            PatternKind::Workflow => EntryKind::Workflow,
        }
    }
}

/// Evidence for a pattern, counted in distinct sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternEvidence {
    /// Distinct sessions showing the pattern.
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Example session ids (a few, in order of appearance).
    pub sessions: Vec<String>,
}

/// A pattern mined from the sessions, with the evidence behind it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Stable id derived from the normalised pattern (e.g. `mistake-3f2a9c1d`).
    pub id: String,
    pub kind: PatternKind,
    /// A readable representative phrasing (the most frequent original).
    pub text: String,
    /// The normalised key the pattern was counted under.
    pub key: String,
    pub evidence: PatternEvidence,
    /// Distinct agents whose sessions show the pattern: 1 unless a collective pass pooled
    /// several agents' sessions (then written out, and at least its `minAgents`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub agents: u32,
    /// A few short excerpts for a reviewer or a model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excerpts: Vec<String>,
    /// For workflows and outcome correlations: mean outcome with the pattern minus without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_lift: Option<f64>,
    /// For mistakes: the tool that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Distinct tasks (strata labels) among the evidence sessions, when sessions carry them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strata: Option<u32>,
    /// One-sided p-value of the pattern's link to success (workflows, correlations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The counts and tests behind the pattern, as a reviewer reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<String>,
    /// The label (`key=value`) all evidence sessions carry, when it is a minority segment: the
    /// lesson holds there, not necessarily for the whole agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// For tool errors: whose error it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<MistakeCause>,
    /// For tool errors: what the sessions that got past it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
    /// Rank among candidates, higher first: sessions, tasks, significance, outcome impact.
    #[serde(default)]
    pub strength: f64,
    /// What a later session is checked for to measure a lesson's effect. Not shown: the key
    /// and text say the same to a person or a model.
    #[serde(skip)]
    pub pattern: Option<crate::memory::document::Pattern>,
}

/// Whose error a recurring tool error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MistakeCause {
    /// The agent's own call was wrong.
    Agent,
    /// A lookup found nothing for a value the customer supplied.
    UserData,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A lesson a reflector proposes: text for the memory, and the candidates that back it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lesson {
    /// Candidate ids this lesson rests on; verification checks their evidence.
    pub candidates: Vec<String>,
    /// Destination section (`lessons`, `preferences`, `workflows`, `facts`).
    pub section: String,
    /// The entry text: clear and actionable.
    pub text: String,
}

/// What a reflector returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reflection {
    pub lessons: Vec<Lesson>,
    /// "What I learned", for the reviewer.
    pub summary: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// Settings of one dream pass (the DreamSchedule's, or the CLI flags').
#[derive(Clone, Debug, PartialEq)]
pub struct DreamSettings {
    /// The most recent N sessions.
    pub lookback_sessions: usize,
    /// Ignore sessions older than this.
    pub max_age: Option<std::time::Duration>,
    /// Only sessions whose labels match all of these (`key=value`; `key` alone: present).
    pub label_selector: Vec<(String, Option<String>)>,
    /// A lesson needs at least this many distinct sessions.
    pub min_evidence: u32,
    /// Budget of the loaded memory, in estimated tokens.
    pub max_tokens: u32,
    /// Entries not reinforced for this long are archived.
    pub stale_after: std::time::Duration,
    /// The instant the pass runs at (injected: same input, same output).
    pub now: Timestamp,
    /// At most this many new or updated lessons per pass; the rest are withheld and counted.
    pub max_changes: u32,
    /// Who may teach the agent a rule.
    pub rule_sources: super::rules::RuleSources,
    /// Session labels naming the task or intent (for the confounding check).
    pub strata_labels: Vec<String>,
    /// Which transcript formats are read (`auto`: each file's own).
    pub format: crate::dream::sessions::FormatChoice,
    /// How the effect of the current lessons is measured and acted on.
    pub effect: crate::dream::effect::EffectSettings,
}

impl DreamSettings {
    /// The defaults of `reverie dream` at `now`: the 50 most recent sessions, 3 sessions of
    /// evidence, 16k tokens, 30 days to staleness, 10 changes, trusted feedback only.
    pub fn defaults(now: Timestamp) -> Self {
        Self {
            lookback_sessions: 50,
            max_age: None,
            label_selector: Vec::new(),
            min_evidence: 3,
            max_tokens: 16_000,
            stale_after: std::time::Duration::from_secs(30 * 86_400),
            now,
            max_changes: DEFAULT_MAX_CHANGES,
            rule_sources: super::rules::RuleSources::default(),
            strata_labels: super::signals::DEFAULT_STRATA_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            format: Default::default(),
            effect: Default::default(),
        }
    }
}

/// Lessons per pass unless configured otherwise.
pub const DEFAULT_MAX_CHANGES: u32 = 10;
