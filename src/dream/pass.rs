//! One dream pass, end to end: select and stream sessions → mine candidates → reflect →
//! verify → curate → a proposal (or a clear "nothing to propose").
//!
//! The pass never writes memory: it returns the changes and the memory they would produce.
//! A failing reflector fails the pass with its error; the caller leaves memory untouched.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::curate::{Curated, curate};
use super::model::{Candidate, DreamSettings, ReadStats};
use super::reflector::{ReflectError, ReflectRequest, Reflector, VerifyReport, verify};
use super::sessions::{SessionsError, discover, stream};
use super::signals::{MineStats, Miner};
use crate::memory::MemoryDocument;
use crate::memory::change::{ApplyError, Change};

/// What a pass needs.
pub struct PassInput<'a> {
    pub agent: &'a str,
    pub sessions_root: &'a Path,
    pub memory: &'a MemoryDocument,
    pub settings: &'a DreamSettings,
    pub reflector: &'a dyn Reflector,
    /// Extra steering for a model reflector.
    pub instructions: Option<&'a str>,
    /// Date curation "as of" the newest session reviewed instead of `settings.now`, so a
    /// replay of the same transcripts gives byte-identical output (the CLI's default).
    pub as_of_newest_session: bool,
}

/// Everything measured during a pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassStats {
    pub sessions_reviewed: u64,
    pub files_found: u64,
    pub lines_read: u64,
    pub lines_skipped: u64,
    pub bytes_read: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_skipped: Vec<super::model::SkippedFile>,
    pub candidates: usize,
    pub below_threshold: u32,
    /// Texts refused as unsafe (instruction overrides, secret requests), reported not proposed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsafe_texts: Vec<super::signals::UnsafeText>,
    pub lessons_proposed: usize,
    pub lessons_accepted: usize,
    pub verification: VerifyReport,
    pub reflector: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Tokens a model would have been sent for the raw lookback window (for comparison).
    pub tokens_full_window: u64,
    pub memory_tokens_before: usize,
    pub memory_tokens_after: usize,
    pub compacted: usize,
    /// Wall time of the pass; not serialised, so the same input prints the same output.
    #[serde(skip)]
    pub duration_ms: u64,
}

impl PassStats {
    fn read(&mut self, read: &ReadStats) {
        self.sessions_reviewed = read.sessions_read;
        self.files_found = read.files_found;
        self.lines_read = read.lines_read;
        self.lines_skipped = read.lines_skipped;
        self.bytes_read = read.bytes_read;
        self.files_skipped = read.files_skipped.clone();
    }

    fn mined(&mut self, mined: &MineStats, candidates: usize) {
        self.candidates = candidates;
        self.below_threshold = mined.below_threshold;
        self.unsafe_texts = mined.unsafe_texts.clone();
    }
}

/// A proposal: what the pass learned and the changes that would curate the memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub summary: String,
    pub changes: Vec<Change>,
    /// The memory the changes produce.
    pub result: MemoryDocument,
    pub candidates: Vec<Candidate>,
    /// The verified lessons the changes came from.
    pub lessons: Vec<super::model::Lesson>,
    pub stats: PassStats,
}

/// How a pass ended.
#[derive(Clone, Debug, PartialEq)]
pub enum PassOutcome {
    /// The lookback selected no session: nothing was reviewed.
    NoSessions(PassStats),
    /// Sessions were reviewed but nothing recurred enough to change the memory.
    NothingToPropose {
        summary: String,
        stats: PassStats,
    },
    Proposal(Box<Proposal>),
}

/// Why a pass failed. Memory is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Sessions(#[from] SessionsError),
    #[error("the reflector failed, so nothing is proposed: {0}")]
    Reflector(#[from] ReflectError),
    #[error("curation produced changes the memory refuses (a bug; please report it): {0}")]
    Curation(#[from] ApplyError),
}

/// Keeps one file per session id (the earliest selected): evidence counts distinct sessions,
/// and a session stored twice (say `s-1.jsonl` and `s-1.jsonl.gz`) must count once.
fn drop_duplicate_ids(sessions: &mut Vec<super::model::SessionMeta>, read: &mut ReadStats) {
    let mut seen = std::collections::HashSet::new();
    sessions.retain(|session| {
        let first = seen.insert(session.id.clone());
        if !first {
            read.files_skipped.push(super::model::SkippedFile {
                path: session.path.display().to_string(),
                reason: format!("duplicate of session {}: counted once", session.id),
            });
        }
        first
    });
}

/// Tokens curation could free by archiving: every loaded entry not pinned or protected.
fn freeable_tokens(memory: &MemoryDocument) -> u32 {
    let tokens: usize = memory
        .entries()
        .filter(|(section, entry)| !entry.pinned && !memory.is_protected(section))
        .map(|(_, entry)| crate::memory::tokens::estimate_tokens(&entry.text) + 8)
        .sum();
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// Runs one pass.
pub async fn run(input: PassInput<'_>) -> Result<PassOutcome, PassError> {
    let started = Instant::now();
    let mut stats = PassStats {
        reflector: input.reflector.name().to_string(),
        ..PassStats::default()
    };
    let mut selection = discover(input.sessions_root, input.settings)?;
    let mut read = selection.stats.clone();
    drop_duplicate_ids(&mut selection.sessions, &mut read);
    // Labels served the lookback; mining does not read them, and across a large selection
    // they are most of the per-session memory.
    for session in &mut selection.sessions {
        session.labels = Default::default();
    }
    if selection.sessions.is_empty() {
        stats.read(&read);
        stats.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(PassOutcome::NoSessions(stats));
    }
    let mut settings = input.settings.clone();
    if input.as_of_newest_session
        && let Some(newest) = selection.sessions.iter().map(|s| s.started).max()
    {
        settings.now = newest;
    }
    let mut miner = Miner::new(input.settings.min_evidence);
    stream(&selection.sessions, &mut miner, &mut read);
    let mined = miner.finish();
    stats.read(&read);
    stats.mined(&mined.stats, mined.candidates.len());
    stats.tokens_full_window = super::reflector::full_window_tokens(read.bytes_read);

    let request = ReflectRequest {
        candidates: &mined.candidates,
        memory: input.memory,
        min_evidence: input.settings.min_evidence,
        max_tokens: input.settings.max_tokens,
        instructions: input.instructions,
    };
    let reflection = input.reflector.reflect(&request).await?;
    stats.tokens_in = reflection.tokens_in;
    stats.tokens_out = reflection.tokens_out;
    stats.lessons_proposed = reflection.lessons.len();
    let model_summary: String = reflection
        .summary
        .chars()
        .take(super::reflector::MAX_SUMMARY_CHARS)
        .collect();
    let summary = format!("Reviewed {} sessions. {}", read.sessions_read, model_summary.trim());
    // Curation can archive what is not protected or pinned to make room, so lessons are
    // budgeted against what it cannot free; curation then compacts to `maxTokens` exactly.
    let verify_request = ReflectRequest {
        max_tokens: input.settings.max_tokens.saturating_add(freeable_tokens(input.memory)),
        ..request
    };
    let (lessons, report) = verify(reflection, &verify_request);
    stats.lessons_accepted = lessons.len();
    stats.verification = report;

    let Curated {
        changes,
        result,
        tokens_before,
        tokens_after,
        compacted,
        notes,
    } = curate(input.agent, input.memory, &lessons, &mined.candidates, &settings)?;
    stats.memory_tokens_before = tokens_before;
    stats.memory_tokens_after = tokens_after;
    stats.compacted = compacted;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    if changes.is_empty() {
        return Ok(PassOutcome::NothingToPropose { summary, stats });
    }
    let summary = std::iter::once(summary).chain(notes).collect::<Vec<_>>().join(" ");
    Ok(PassOutcome::Proposal(Box::new(Proposal {
        summary,
        changes,
        result,
        candidates: mined.candidates,
        lessons,
        stats,
    })))
}
