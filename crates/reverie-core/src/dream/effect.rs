//! Did a lesson help? Every loaded entry that names the pattern it was learned from is looked
//! for in the sessions before and after the agent started running with it: in how many sessions
//! the pattern occurred, how those sessions ended, the differences with confidence intervals,
//! and a verdict.
//!
//! A session ran with an entry when it names a memory revision (`memoryRevision`, or the label)
//! at or after the one that adopted the entry; a session that names none is attributed by time,
//! to the revision current when it started. The comparison is before/after, not a controlled
//! experiment: whatever else changed at the same time (the product, the customers, the model)
//! moves the numbers too, and the intervals say how much chance alone could.
//!
//! [`EffectMeter`] is a [`SessionVisitor`]: it streams, keeps a few counters per lesson, and
//! does work on a record only when some lesson's pattern could be in it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::model::{DreamSettings, ReadStats, Record, Role, SessionMeta, SessionVisitor};
use super::normalize::{content_words, jaccard, normalize_error};
use super::risk::sentences;
use super::rules::{RuleSources, Said};
use super::sessions::{FormatChoice, SessionsError, select_recent, stream};
use super::stats::{Interval, Moments, mean_difference, rate_difference};
use crate::memory::MemoryDocument;
use crate::memory::document::{Entry, Pattern};

/// A statement recurs when a sentence shares this much of its content words (as mining groups
/// rules).
const SAME_STATEMENT: f64 = 0.5;
/// Longest user message or feedback inspected for statements (as mining).
const MAX_STATEMENT_TEXT: usize = 4_000;
/// A move in a pattern's rate smaller than this is never "meaningful", whatever the baseline.
const MIN_MEANINGFUL: f64 = 0.05;
/// A tool no lesson names, as it sits in a session's call sequence.
const OTHER_TOOL: u32 = u32::MAX;

/// How effects are measured, judged and acted on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EffectSettings {
    /// A side with fewer sessions than this (before or after adoption): `too-early`.
    pub min_sessions: u32,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// The most recent sessions measured (the lookback's label selection applies, its age
    /// limit does not: the sessions before an adoption are the baseline).
    pub window: usize,
    /// Curation archives a `no-effect` lesson once this many sessions ran with it (0: never).
    pub archive_after: u32,
}

/// Whose restated rule counts: the same sources a dream learns rules from, so a customer can
/// neither teach the agent a rule nor, by repeating it, make a team rule look ineffective.
fn trusted(sources: &RuleSources, source: Said, from: &str, team: bool) -> bool {
    match source {
        Said::Message => sources.trusts_user_messages(team),
        Said::Feedback => sources.trusts_feedback(from, team),
    }
}

impl Default for EffectSettings {
    fn default() -> Self {
        Self {
            min_sessions: DEFAULT_MIN_SESSIONS,
            confidence: 0.95,
            window: DEFAULT_WINDOW,
            archive_after: DEFAULT_ARCHIVE_AFTER,
        }
    }
}

/// Sessions needed on each side of an adoption before a verdict, unless configured otherwise.
pub const DEFAULT_MIN_SESSIONS: u32 = 10;
/// Sessions measured, unless configured otherwise.
pub const DEFAULT_WINDOW: usize = 1_000;
/// Sessions run with a `no-effect` lesson before curation proposes its archive, unless
/// configured otherwise.
pub const DEFAULT_ARCHIVE_AFTER: u32 = 30;

/// What the numbers say about a lesson.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Outcomes got significantly worse after adoption.
    Regressed,
    /// Enough sessions to rule out that the pattern moved the way the lesson wants by a
    /// meaningful amount (half its former rate, at least 5 points).
    NoEffect,
    /// The pattern moved the way the lesson wants (a mistake rarer, a workflow more common),
    /// beyond chance, and outcomes did not get significantly worse.
    Effective,
    /// Too few sessions to tell: fewer than the minimum on a side, or the interval still holds
    /// both no change and a meaningful one.
    TooEarly,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Effective,
        Verdict::NoEffect,
        Verdict::Regressed,
        Verdict::TooEarly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::NoEffect => "no-effect",
            Verdict::Effective => "effective",
            Verdict::TooEarly => "too-early",
        }
    }
}

/// When the agent started running with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    /// The memory revision that adopted it, when the store recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    pub at: Timestamp,
}

impl Adopted {
    /// When `entry` was adopted: its provenance's revision and instant, else the proposal's
    /// instant, else its creation.
    pub fn of(entry: &Entry) -> Self {
        let provenance = entry.provenance.as_ref();
        Adopted {
            revision: provenance.and_then(|p| p.revision),
            at: provenance.map_or(entry.created, |p| p.applied.unwrap_or(p.at)),
        }
    }

    /// Whether `session` ran with the entry. By time, a session that started at the very
    /// instant of adoption did not (a pass dated at its newest session adopts after it).
    fn covers(&self, session: &SessionMeta) -> bool {
        match (session.memory_revision, self.revision) {
            (Some(ran), Some(adopted)) => ran >= adopted,
            _ => session.started > self.at,
        }
    }
}

/// Sessions on one side of an adoption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub sessions: u32,
    /// Sessions where the pattern occurred.
    pub occurrences: u32,
    /// `occurrences / sessions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Mean outcome score of the sessions that report one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<f64>,
    /// Sessions that report an outcome.
    #[serde(default)]
    pub scored: u32,
}

/// The effect of one lesson.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LessonEffect {
    pub id: String,
    pub text: String,
    pub adopted: Adopted,
    pub pattern: Pattern,
    pub before: Side,
    pub after: Side,
    /// After minus before, of the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_change: Option<Interval>,
    /// After minus before, of the mean outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_change: Option<Interval>,
    pub verdict: Verdict,
}

impl LessonEffect {
    /// What the pattern is, for a sentence: "its mistake", "its rule being restated", ….
    fn what(&self) -> &'static str {
        match self.pattern {
            Pattern::ToolError { .. } => "its mistake",
            Pattern::Statement { .. } => "the need to say it again",
            Pattern::Sequence { .. } => "the workflow",
            Pattern::Action { .. } => "the action",
        }
    }

    /// One line a reviewer reads: "cut its mistake from 31% to 4% of sessions (…): effective".
    pub fn sentence(&self) -> String {
        format!("{}: {}", self.numbers(), self.verdict.as_str())
    }

    /// The sentence without its verdict: what moved, by how much, with the intervals.
    pub fn numbers(&self) -> String {
        let (before, after) = (percent(self.before.rate), percent(self.after.rate));
        let what = self.what();
        let mut line = match self.rate_change {
            Some(change) if change.difference < 0.0 => format!("cut {what} from {before} to {after} of sessions"),
            Some(change) if change.difference > 0.0 => format!("raised {what} from {before} to {after} of sessions"),
            _ => format!("did not move {what}: {before} to {after} of sessions"),
        };
        line.push_str(&format!(
            " ({} before, {} after",
            self.before.sessions, self.after.sessions
        ));
        if let Some(change) = self.rate_change {
            line.push_str(&format!(
                "; {} points, 95% CI {} to {}",
                signed_points(change.difference),
                signed_points(change.low),
                signed_points(change.high)
            ));
        }
        line.push(')');
        if let Some(change) = self.outcome_change {
            line.push_str(&format!(
                "; mean outcome {} ({} to {})",
                signed_outcome(change.difference),
                signed_outcome(change.low),
                signed_outcome(change.high)
            ));
        }
        line
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.0}%", r * 100.0))
}

fn signed_points(difference: f64) -> String {
    format!("{:+.0}", no_negative_zero((difference * 100.0).round()))
}

/// An outcome difference with two decimals and its sign.
fn signed_outcome(difference: f64) -> String {
    format!("{:+.2}", no_negative_zero((difference * 100.0).round() / 100.0))
}

/// What rounds to zero is shown as +0, not -0.
fn no_negative_zero(value: f64) -> f64 {
    if value == 0.0 { 0.0 } else { value }
}

/// The effects of all measured lessons, in memory order: the `reverie effect` JSON contract.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Effects {
    pub lessons: Vec<LessonEffect>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.lessons.is_empty()
    }

    /// How many lessons have `verdict`.
    pub fn count(&self, verdict: Verdict) -> u32 {
        self.lessons.iter().filter(|l| l.verdict == verdict).count() as u32
    }

    pub fn get(&self, id: &str) -> Option<&LessonEffect> {
        self.lessons.iter().find(|l| l.id == id)
    }
}

/// What a row of the effect table shows: the same whether it comes from a measurement here or
/// from a proposal in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectRow {
    pub text: String,
    pub adopted: Adopted,
    pub before: Side,
    pub after: Side,
    pub outcome_change: Option<Interval>,
    pub verdict: Verdict,
}

impl LessonEffect {
    pub fn row(&self) -> EffectRow {
        EffectRow {
            text: self.text.clone(),
            adopted: self.adopted,
            before: self.before,
            after: self.after,
            outcome_change: self.outcome_change,
            verdict: self.verdict,
        }
    }
}

impl EffectRow {
    /// The column titles of an effect table.
    pub const HEADER: [&'static str; 5] = ["LESSON", "ADOPTED", "BEFORE → AFTER", "OUTCOME CHANGE", "VERDICT"];

    /// The row's cells under [`EffectRow::HEADER`], as the terminal and the dashboard show them.
    pub fn cells(&self) -> [String; 5] {
        let adopted = match self.adopted.revision {
            Some(revision) => format!("r{revision} {}", self.adopted.at.strftime("%Y-%m-%d")),
            None => self.adopted.at.strftime("%Y-%m-%d").to_string(),
        };
        let side = |s: &Side| format!("{} of {}", percent(s.rate), s.sessions);
        let outcome = self.outcome_change.map_or_else(
            || "-".to_string(),
            |c| {
                format!(
                    "{} ({} to {})",
                    signed_outcome(c.difference),
                    signed_outcome(c.low),
                    signed_outcome(c.high)
                )
            },
        );
        [
            one_line(&self.text, 60),
            adopted,
            format!("{} → {}", side(&self.before), side(&self.after)),
            outcome,
            self.verdict.as_str().to_string(),
        ]
    }
}

/// The effect table a person reads: one row per lesson.
pub fn render_table(lessons: &[EffectRow]) -> String {
    if lessons.is_empty() {
        return "No lesson in this memory names the pattern it was learned from: nothing to measure.\n".into();
    }
    let rows: Vec<[String; 5]> = lessons.iter().map(EffectRow::cells).collect();
    let header = EffectRow::HEADER;
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out
}

/// `text` on one line, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// Measures the lessons of `memory` over the most recent `effect.window` sessions of the
/// directories (each with its format, `None`: the pass's), selected by `settings`' labels.
/// Nothing is read when no lesson can be measured.
pub fn measure(
    memory: &MemoryDocument,
    roots: &[(&Path, Option<FormatChoice>)],
    settings: &DreamSettings,
) -> Result<(Effects, ReadStats), SessionsError> {
    let mut read = ReadStats::default();
    let mut meter = EffectMeter::new(memory, settings.effect, settings.rule_sources.clone());
    if meter.is_empty() {
        return Ok((Effects::default(), read));
    }
    let window = DreamSettings {
        lookback_sessions: settings.effect.window.max(1),
        max_age: None,
        ..settings.clone()
    };
    let sessions = select_recent(roots, &window, &mut read)?;
    stream(&sessions, &mut meter, &mut read);
    Ok((meter.finish(), read))
}

/// The loaded entries of `memory` whose effect can be measured: those that name a pattern.
fn measurable(memory: &MemoryDocument) -> impl Iterator<Item = &Entry> {
    memory
        .entries()
        .map(|(_, entry)| entry)
        .filter(|entry| entry.evidence.pattern.is_some())
}

/// A lesson being measured.
#[derive(Debug)]
struct Tracked {
    id: String,
    text: String,
    adopted: Adopted,
    pattern: Pattern,
    /// Statements: the content words; sequences: the interned steps.
    words: BTreeSet<String>,
    steps: Vec<u32>,
    before: Counts,
    after: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    sessions: u32,
    occurrences: u32,
    outcomes: Moments,
}

impl Counts {
    fn side(&self) -> Side {
        Side {
            sessions: self.sessions,
            occurrences: self.occurrences,
            rate: (self.sessions > 0).then(|| f64::from(self.occurrences) / f64::from(self.sessions)),
            outcome: self.outcomes.mean(),
            scored: self.outcomes.n,
        }
    }
}

/// The session being streamed.
#[derive(Debug, Default)]
struct Current {
    /// Per lesson: it ran with the lesson.
    after: Vec<bool>,
    /// Per lesson: the pattern occurred.
    occurred: Vec<bool>,
    /// Interned tools in call order, repeats of one tool collapsed (as mining does).
    tools: Vec<u32>,
    score: Option<f64>,
    /// The session is the team's own (its user may state rules).
    team: bool,
}

/// Streams sessions and measures every lesson it was built with.
#[derive(Debug)]
pub struct EffectMeter {
    settings: EffectSettings,
    lessons: Vec<Tracked>,
    /// Tools some lesson names.
    tools: HashMap<String, u32>,
    statements: bool,
    /// Who may restate a rule (the Agent's rule sources).
    sources: RuleSources,
    current: Current,
}

impl EffectMeter {
    /// A meter for the measurable entries of `memory`; restated rules count from `sources`.
    pub fn new(memory: &MemoryDocument, settings: EffectSettings, sources: RuleSources) -> Self {
        let mut tools: HashMap<String, u32> = HashMap::new();
        let mut intern = |name: &str| {
            let next = tools.len() as u32;
            *tools.entry(name.to_string()).or_insert(next)
        };
        let lessons: Vec<Tracked> = measurable(memory)
            .filter_map(|entry| {
                let pattern = entry.evidence.pattern.clone()?;
                let (words, steps) = match &pattern {
                    Pattern::Statement { words } => (words.iter().cloned().collect(), Vec::new()),
                    Pattern::Sequence { steps } => (BTreeSet::new(), steps.iter().map(|s| intern(s)).collect()),
                    Pattern::Action { tool } | Pattern::ToolError { tool, .. } => {
                        intern(tool);
                        (BTreeSet::new(), Vec::new())
                    }
                };
                Some(Tracked {
                    id: entry.id.clone(),
                    text: entry.text.clone(),
                    adopted: Adopted::of(entry),
                    pattern,
                    words,
                    steps,
                    before: Counts::default(),
                    after: Counts::default(),
                })
            })
            .collect();
        let statements = lessons.iter().any(|l| matches!(l.pattern, Pattern::Statement { .. }));
        Self {
            settings,
            lessons,
            tools,
            statements,
            sources,
            current: Current::default(),
        }
    }

    /// Whether any lesson can be measured (else streaming is wasted).
    pub fn is_empty(&self) -> bool {
        self.lessons.is_empty()
    }

    fn failed(&mut self, name: &str, error: &str) {
        let mut key = None;
        for (i, lesson) in self.lessons.iter().enumerate() {
            if let Pattern::ToolError { tool, error: wanted } = &lesson.pattern
                && tool == name
            {
                let key = key.get_or_insert_with(|| normalize_error(error));
                self.current.occurred[i] |= key == wanted;
            }
        }
    }

    fn said(&mut self, text: &str, source: Said, from: &str) {
        if !self.statements
            || text.len() > MAX_STATEMENT_TEXT
            || !trusted(&self.sources, source, from, self.current.team)
        {
            return;
        }
        // Each sentence, and the whole text (a complaint is grouped whole).
        for part in sentences(text).chain(std::iter::once(text)) {
            let words = content_words(part);
            if words.len() < 2 {
                continue;
            }
            for (i, lesson) in self.lessons.iter().enumerate() {
                if matches!(lesson.pattern, Pattern::Statement { .. })
                    && jaccard(&lesson.words, &words) >= SAME_STATEMENT
                {
                    self.current.occurred[i] = true;
                }
            }
        }
    }

    fn called(&mut self, name: &str) {
        let tool = self.tools.get(name).copied().unwrap_or(OTHER_TOOL);
        if self.current.tools.last() != Some(&tool) {
            self.current.tools.push(tool);
        }
        if tool == OTHER_TOOL {
            return;
        }
        for (i, lesson) in self.lessons.iter().enumerate() {
            if let Pattern::Action { tool: wanted } = &lesson.pattern
                && wanted == name
            {
                self.current.occurred[i] = true;
            }
        }
    }

    /// The measured effects.
    pub fn finish(self) -> Effects {
        let settings = self.settings;
        Effects {
            lessons: self.lessons.into_iter().map(|l| judge(l, &settings)).collect(),
        }
    }
}

impl SessionVisitor for EffectMeter {
    fn start_session(&mut self, session: &SessionMeta) {
        let n = self.lessons.len();
        self.current.after.clear();
        self.current
            .after
            .extend(self.lessons.iter().map(|l| l.adopted.covers(session)));
        self.current.occurred.clear();
        self.current.occurred.resize(n, false);
        self.current.tools.clear();
        self.current.score = None;
        self.current.team = self
            .sources
            .is_team_session(|key| session.labels.get(key).map(String::as_str));
    }

    fn record(&mut self, record: Record<'_>) {
        match record {
            Record::ToolCall { name, .. } => self.called(name),
            Record::ToolResult {
                name,
                ok: false,
                error: Some(error),
                ..
            } => self.failed(name, error),
            Record::Message {
                role: Role::User, text, ..
            } => self.said(text, Said::Message, ""),
            Record::Feedback { from, text, .. } => self.said(text, Said::Feedback, from),
            Record::Outcome { success, score, .. } => {
                self.current.score = score.or(success.map(|s| if s { 1.0 } else { 0.0 }));
            }
            _ => {}
        }
    }

    fn end_session(&mut self) {
        let current = &mut self.current;
        for (i, lesson) in self.lessons.iter_mut().enumerate() {
            if !lesson.steps.is_empty() {
                current.occurred[i] = current.tools.windows(lesson.steps.len()).any(|w| w == lesson.steps);
            }
            let counts = if current.after[i] {
                &mut lesson.after
            } else {
                &mut lesson.before
            };
            counts.sessions += 1;
            counts.occurrences += u32::from(current.occurred[i]);
            if let Some(score) = current.score {
                counts.outcomes.add(score);
            }
        }
    }
}

/// The numbers and the verdict of one lesson.
fn judge(lesson: Tracked, settings: &EffectSettings) -> LessonEffect {
    let (before, after) = (&lesson.before, &lesson.after);
    let rate_change = rate_difference(
        (after.occurrences, after.sessions),
        (before.occurrences, before.sessions),
        settings.confidence,
    );
    let outcome_change = mean_difference(&after.outcomes, &before.outcomes, settings.confidence);
    let enough = before.sessions >= settings.min_sessions && after.sessions >= settings.min_sessions;
    // The smallest move worth a place in memory: half the baseline rate, at least 5 points.
    let meaningful = (before.side().rate.unwrap_or(0.0) / 2.0).max(MIN_MEANINGFUL);
    let unwanted = lesson.pattern.unwanted();
    let verdict = match rate_change {
        _ if !enough => Verdict::TooEarly,
        _ if outcome_change.is_some_and(|change| change.below_zero()) => Verdict::Regressed,
        Some(change) if (unwanted && change.below_zero()) || (!unwanted && change.above_zero()) => Verdict::Effective,
        // The interval rules out a meaningful move the lesson wants: it did nothing.
        Some(change) if (unwanted && change.low > -meaningful) || (!unwanted && change.high < meaningful) => {
            Verdict::NoEffect
        }
        // The interval still holds both "nothing" and "a meaningful move": too early to tell.
        _ => Verdict::TooEarly,
    };
    LessonEffect {
        id: lesson.id,
        text: lesson.text,
        adopted: lesson.adopted,
        pattern: lesson.pattern,
        before: before.side(),
        after: after.side(),
        rate_change,
        outcome_change,
        verdict,
    }
}

#[cfg(test)]
#[path = "effect_tests.rs"]
mod tests;
