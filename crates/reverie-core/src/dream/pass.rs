//! One dream pass, end to end: select and stream sessions → mine candidates → reflect →
//! verify → curate → a proposal (or a clear "nothing to propose").
//!
//! The pass never writes memory: it returns the changes and the memory they would produce.
//! A failing reflector fails the pass with its error; the caller leaves memory untouched.
//!
//! A collective pass pools the sessions of several agents ([`PassInput::sessions`]) into one
//! review that proposes changes to the target agent's memory: the lookback selects each agent's
//! sessions on its own, and a pattern must recur in sessions of [`PassInput::min_agents`]
//! distinct agents to count.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::curate::{Curated, curate};
use super::effect::{self, Effects};
use super::model::{Candidate, DreamSettings, Lesson, ReadStats, SessionMeta};
use super::reflector::{ReflectError, ReflectRequest, Reflector, VerifyReport, verify};
use super::risk::KnownAddresses;
use super::sessions::{FormatChoice, SessionsError, select_recent, stream};
use super::signals::{MineSettings, MineStats, Miner, NotSignificant, TextSource, TransientErrors, UnsafeText};
use crate::memory::MemoryDocument;
use crate::memory::change::{ApplyError, Change};

/// A directory of session transcripts and the agent whose sessions it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRoot<'a> {
    pub agent: &'a str,
    pub path: &'a Path,
    /// The agent's transcript format, when it is not the pass's own (`DreamSettings::format`).
    pub format: Option<FormatChoice>,
}

/// An owned [`SessionRoot`]: what a command line or a Job names (`--sessions`,
/// `--sessions-format`).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionsDir {
    pub agent: String,
    pub path: PathBuf,
    pub format: Option<FormatChoice>,
}

impl SessionsDir {
    pub fn root(&self) -> SessionRoot<'_> {
        SessionRoot {
            agent: &self.agent,
            path: &self.path,
            format: self.format,
        }
    }
}

/// What a pass needs.
pub struct PassInput<'a> {
    /// The agent whose memory the pass proposes changes to (in a collective pass, the target).
    pub agent: &'a str,
    /// Where the sessions are. One agent's root (or several roots of one agent): an ordinary
    /// pass. Roots of several agents: a collective pass over all their sessions, each agent's
    /// selected by the lookback on its own (its own `lookback_sessions` most recent). Roots
    /// naming the same agent are that agent's sessions together.
    pub sessions: &'a [SessionRoot<'a>],
    /// 1 = ordinary single-agent pass; N>1: a pattern becomes a candidate only when seen in
    /// sessions of at least N distinct agents.
    pub min_agents: u32,
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
    /// Collective passes only (absent otherwise): what was pooled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collective: Option<CollectiveStats>,
    /// Texts refused for their risk class (suspected injections), reported not proposed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsafe_texts: Vec<UnsafeText>,
    /// How many distinct suspected injections `unsafeTexts` lists.
    pub suspected_injections: u32,
    /// Transient infrastructure errors: counted here, never taught.
    pub transient_errors: TransientErrors,
    /// Frequent patterns that failed their significance or confounding test.
    pub not_significant: NotSignificant,
    /// Verified lessons left out by the per-pass budget (`maxChanges`), weakest first.
    pub withheld: u32,
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
    /// The measured effect of the lessons the memory holds (single-agent passes).
    #[serde(skip_serializing_if = "Effects::is_empty")]
    pub effects: Effects,
    /// Wall time of the pass; not serialised, so the same input prints the same output.
    #[serde(skip)]
    pub duration_ms: u64,
}

/// What a collective pass pooled and what it set aside.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectiveStats {
    /// Agents whose sessions were pooled.
    pub agents: u32,
    /// A pattern counted only when seen in sessions of at least this many agents.
    pub min_agents: u32,
    /// Patterns with enough sessions, but seen in fewer than `minAgents` agents (not proposed).
    pub below_agent_threshold: u32,
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
        if let Some(collective) = &mut self.collective {
            collective.below_agent_threshold = mined.below_agent_threshold;
        }
        self.unsafe_texts = mined.unsafe_texts.clone();
        self.transient_errors = mined.transient_errors.clone();
        self.not_significant = mined.not_significant.clone();
        self.suspected_injections = self.unsafe_texts.len() as u32;
    }

    /// Adds the lessons a reflector proposed that fell in a risk class to the suspected
    /// injections, with the evidence of the candidates they cited.
    fn refused(&mut self, report: &VerifyReport, candidates: &[Candidate]) {
        for risky in &report.risky {
            let cited = candidates.iter().filter(|c| risky.candidates.contains(&c.id));
            let strongest = cited.max_by_key(|c| c.evidence.count);
            self.unsafe_texts.push(UnsafeText {
                text: risky.text.clone(),
                reason: risky.class.describe(),
                class: risky.class,
                sessions: strongest.map_or(0, |c| c.evidence.count),
                example: strongest.and_then(|c| c.evidence.sessions.first().cloned()),
                sources: vec![TextSource::Reflector],
            });
        }
        self.suspected_injections = self.unsafe_texts.len() as u32;
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

/// The sessions one agent contributes to a pass.
struct AgentSessions<'a> {
    agent: &'a str,
    sessions: Vec<SessionMeta>,
}

/// Selects the sessions of every agent, agents in the order they are first named: the lookback
/// applies per agent (over all of an agent's roots), duplicates are dropped per agent (two agents
/// may use the same session ids). Adds what was found to `read`.
fn select<'a>(
    roots: &[SessionRoot<'a>],
    settings: &DreamSettings,
    read: &mut ReadStats,
) -> Result<Vec<AgentSessions<'a>>, SessionsError> {
    let mut agents: Vec<&'a str> = Vec::new();
    for root in roots {
        if !agents.contains(&root.agent) {
            agents.push(root.agent);
        }
    }
    agents
        .into_iter()
        .map(|agent| {
            let own: Vec<(&Path, Option<FormatChoice>)> = roots
                .iter()
                .filter(|root| root.agent == agent)
                .map(|root| (root.path, root.format))
                .collect();
            Ok(AgentSessions {
                agent,
                sessions: select_recent(&own, settings, read)?,
            })
        })
        .collect()
}

fn plural(n: u32, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// What the agent threshold of a collective pass did, for its summary.
fn agent_threshold_note(collective: &CollectiveStats) -> String {
    match (collective.min_agents, collective.below_agent_threshold) {
        (1, _) => String::new(),
        (min, 0) => format!(" A pattern had to recur in at least {min} agents."),
        (min, below) => format!(
            " A pattern had to recur in at least {min} agents: {} with enough sessions did not.",
            plural(below, "pattern")
        ),
    }
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
    let mut read = ReadStats::default();
    let agents = select(input.sessions, input.settings, &mut read)?;
    let min_agents = input.min_agents.max(1);
    if agents.len() > 1 || min_agents > 1 {
        stats.collective = Some(CollectiveStats {
            agents: agents.len() as u32,
            min_agents,
            below_agent_threshold: 0,
        });
    }
    let sessions = || agents.iter().flat_map(|a| &a.sessions);
    if sessions().next().is_none() {
        stats.read(&read);
        stats.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(PassOutcome::NoSessions(stats));
    }
    let mut settings = input.settings.clone();
    if input.as_of_newest_session
        && let Some(newest) = sessions().map(|s| s.started).max()
    {
        settings.now = newest;
    }
    // The effect of what the agent already learned: measured on its own sessions only, since a
    // collective pass pools agents that did not run with the target's memory.
    if stats.collective.is_none()
        && let Some(agent) = agents.first()
    {
        let roots: Vec<(&Path, Option<FormatChoice>)> = input
            .sessions
            .iter()
            .filter(|root| root.agent == agent.agent)
            .map(|root| (root.path, root.format))
            .collect();
        stats.effects = effect::measure(input.memory, &roots, &settings)?.0;
    }
    let mine_settings = MineSettings {
        min_evidence: input.settings.min_evidence,
        min_agents,
        rule_sources: input.settings.rule_sources.clone(),
        strata_labels: input.settings.strata_labels.clone(),
        known_addresses: KnownAddresses::from_memory(input.memory),
    };
    let mut miner = match stats.collective {
        Some(_) => {
            let names: Vec<&str> = agents.iter().map(|a| a.agent).collect();
            Miner::collective(mine_settings, &names)
        }
        None => Miner::new(mine_settings),
    };
    for (index, agent) in agents.iter().enumerate() {
        miner.set_agent(index as u32);
        stream(&agent.sessions, &mut miner, &mut read);
    }
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
    let summary = match &stats.collective {
        None => format!("Reviewed {} sessions. {}", read.sessions_read, model_summary.trim()),
        Some(collective) => format!(
            "Reviewed {} sessions pooled from {}.{} {}",
            read.sessions_read,
            plural(collective.agents, "agent"),
            agent_threshold_note(collective),
            model_summary.trim()
        ),
    };
    // Curation can archive what is not protected or pinned to make room, so lessons are
    // budgeted against what it cannot free; curation then compacts to `maxTokens` exactly.
    let verify_request = ReflectRequest {
        max_tokens: input.settings.max_tokens.saturating_add(freeable_tokens(input.memory)),
        ..request
    };
    let (mut lessons, report) = verify(reflection, &verify_request);
    stats.lessons_accepted = lessons.len();
    stats.refused(&report, &mined.candidates);
    stats.verification = report;

    rank(&mut lessons, &mined.candidates);
    let (lessons, curated) = within_budget(
        input.agent,
        input.memory,
        lessons,
        &mined.candidates,
        &stats.effects,
        &settings,
    )?;
    stats.withheld = (stats.lessons_accepted - lessons.len()) as u32;
    let Curated {
        changes,
        result,
        tokens_before,
        tokens_after,
        compacted,
        mut notes,
    } = curated;
    if stats.withheld > 0 {
        notes.push(format!(
            "{} weaker lessons were withheld (at most {} changes per pass).",
            stats.withheld, settings.max_changes
        ));
    }
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

/// Orders lessons strongest first: by the strength of the strongest candidate each cites (sessions,
/// tasks, significance, outcome impact), the reflector's order among equals.
fn rank(lessons: &mut [Lesson], candidates: &[Candidate]) {
    let strength = |lesson: &Lesson| {
        candidates
            .iter()
            .filter(|c| lesson.candidates.contains(&c.id))
            .map(|c| c.strength)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    lessons.sort_by(|a, b| strength(b).total_cmp(&strength(a)));
}

/// Curates the strongest lessons whose changes fit `max_changes`: a reviewer reads a few changes
/// that matter, not seventy. Curation's own changes (reinforcing, archiving stale entries) count
/// too, so lessons are dropped weakest first until the whole proposal fits; what curation needs
/// regardless of lessons (compaction to the token budget) is never dropped.
fn within_budget(
    agent: &str,
    memory: &MemoryDocument,
    mut lessons: Vec<Lesson>,
    candidates: &[Candidate],
    effects: &Effects,
    settings: &DreamSettings,
) -> Result<(Vec<Lesson>, Curated), ApplyError> {
    let max = settings.max_changes.max(1) as usize;
    lessons.truncate(max);
    loop {
        let curated = curate(agent, memory, &lessons, candidates, effects, settings)?;
        let excess = curated.changes.len().saturating_sub(max);
        if excess == 0 || lessons.is_empty() {
            return Ok((lessons, curated));
        }
        lessons.truncate(lessons.len().saturating_sub(excess));
    }
}

#[cfg(test)]
#[path = "pass_tests.rs"]
mod tests;
