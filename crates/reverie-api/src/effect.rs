//! Lesson effects and lesson patterns as a MemoryProposal carries them, and their translation
//! from and to the core's measurement (`reverie_core::dream::effect`).
//!
//! Numbers are decimal strings, as Kubernetes API conventions ask instead of floats; rates are
//! not stored at all, since sessions and occurrences give them exactly.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use reverie_core::dream::effect as core;
use reverie_core::dream::stats::Interval;
use reverie_core::memory::document::Pattern;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// At most this many lesson effects ride on one proposal.
pub const MAX_EFFECTS: usize = 64;
/// Bounds of a pattern the API accepts; a longer one is left out (the lesson is then not
/// measured), never cut, since a cut pattern would match something else.
const MAX_PATTERN_TEXT: usize = 1_000;
const MAX_PATTERN_ITEMS: usize = 64;
/// A decimal: optional sign, digits, optional fraction.
const DECIMAL_PATTERN: &str = r"^[-+]?[0-9]+(\.[0-9]+)?$";

/// What a lesson was learned from, so later sessions can be checked for it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidencePattern {
    pub kind: PatternKind,
    /// ToolError and Action: the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub tool: Option<String>,
    /// ToolError: the normalised error (volatile values masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub error: Option<String>,
    /// Statement: the content words of the rule or complaint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1000)))]
    pub words: Vec<String>,
    /// Sequence: the tools, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1000)))]
    pub steps: Vec<String>,
}

/// The kind of a lesson's pattern.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PatternKind {
    /// A tool failing with one normalised error: should occur less.
    ToolError,
    /// A rule or complaint someone had to state: should occur less.
    Statement,
    /// Tools called one right after the other: should occur more.
    Sequence,
    /// A tool called at all: should occur more.
    Action,
}

fn fits(text: &str) -> bool {
    text.len() <= MAX_PATTERN_TEXT
}

fn all_fit(items: &[String]) -> bool {
    !items.is_empty() && items.len() <= MAX_PATTERN_ITEMS && items.iter().all(|i| fits(i))
}

/// The API form of a pattern; `None` when it is over the API's bounds.
pub fn api_pattern(pattern: &Pattern) -> Option<EvidencePattern> {
    let empty = EvidencePattern {
        kind: PatternKind::Action,
        tool: None,
        error: None,
        words: Vec::new(),
        steps: Vec::new(),
    };
    let api = match pattern {
        Pattern::ToolError { tool, error } => EvidencePattern {
            kind: PatternKind::ToolError,
            tool: Some(tool.clone()),
            error: Some(error.clone()),
            ..empty
        },
        Pattern::Statement { words } => EvidencePattern {
            kind: PatternKind::Statement,
            words: words.clone(),
            ..empty
        },
        Pattern::Sequence { steps } => EvidencePattern {
            kind: PatternKind::Sequence,
            steps: steps.clone(),
            ..empty
        },
        Pattern::Action { tool } => EvidencePattern {
            tool: Some(tool.clone()),
            ..empty
        },
    };
    core_pattern(&api).is_some().then_some(api)
}

/// The core form of an API pattern; `None` when its fields do not make one of its kind (a
/// hand-written proposal), so the lesson is simply not measured.
pub fn core_pattern(api: &EvidencePattern) -> Option<Pattern> {
    let tool = api.tool.clone().filter(|t| !t.is_empty() && fits(t));
    match api.kind {
        PatternKind::ToolError => Some(Pattern::ToolError {
            tool: tool?,
            error: api.error.clone().filter(|e| !e.is_empty() && fits(e))?,
        }),
        PatternKind::Statement => all_fit(&api.words).then(|| Pattern::Statement {
            words: api.words.clone(),
        }),
        PatternKind::Sequence => all_fit(&api.steps).then(|| Pattern::Sequence {
            steps: api.steps.clone(),
        }),
        PatternKind::Action => Some(Pattern::Action { tool: tool? }),
    }
}

/// The measured effect of one lesson the agent's memory holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LessonEffect {
    /// The entry's id.
    #[schemars(length(max = 253))]
    pub id: String,
    #[schemars(length(max = 4096))]
    pub text: String,
    /// The memory revision that adopted the lesson, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_revision: Option<u64>,
    /// When the lesson was adopted.
    pub adopted: Time,
    /// Sessions before adoption.
    pub before: EffectSide,
    /// Sessions run with the lesson.
    pub after: EffectSide,
    /// Change of the pattern's rate (after − before), with its 95% interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_change: Option<EffectInterval>,
    /// Change of the mean outcome (after − before), with its 95% interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_change: Option<EffectInterval>,
    pub verdict: EffectVerdict,
    /// What moved, by how much, with the intervals, in one sentence for a reviewer.
    #[schemars(length(max = 1000))]
    pub summary: String,
}

/// Sessions on one side of an adoption.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectSide {
    pub sessions: u32,
    /// Sessions where the pattern occurred.
    pub occurrences: u32,
    /// Sessions that reported an outcome.
    #[serde(default)]
    pub scored: u32,
    /// Their mean outcome score, a decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DECIMAL_PATTERN), length(max = 32))]
    pub outcome: Option<String>,
}

/// A difference with its confidence interval, as decimals.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EffectInterval {
    #[schemars(regex(pattern = DECIMAL_PATTERN), length(max = 32))]
    pub difference: String,
    #[schemars(regex(pattern = DECIMAL_PATTERN), length(max = 32))]
    pub low: String,
    #[schemars(regex(pattern = DECIMAL_PATTERN), length(max = 32))]
    pub high: String,
}

/// What the numbers say about a lesson.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EffectVerdict {
    /// The pattern moved as the lesson wants, beyond chance, and outcomes did not get worse.
    Effective,
    /// Enough sessions, and the pattern did not move beyond chance.
    NoEffect,
    /// Outcomes got significantly worse after adoption.
    Regressed,
    /// Too few sessions before or after adoption to say.
    TooEarly,
}

impl From<core::Verdict> for EffectVerdict {
    fn from(verdict: core::Verdict) -> Self {
        match verdict {
            core::Verdict::Effective => EffectVerdict::Effective,
            core::Verdict::NoEffect => EffectVerdict::NoEffect,
            core::Verdict::Regressed => EffectVerdict::Regressed,
            core::Verdict::TooEarly => EffectVerdict::TooEarly,
        }
    }
}

impl From<EffectVerdict> for core::Verdict {
    fn from(verdict: EffectVerdict) -> Self {
        match verdict {
            EffectVerdict::Effective => core::Verdict::Effective,
            EffectVerdict::NoEffect => core::Verdict::NoEffect,
            EffectVerdict::Regressed => core::Verdict::Regressed,
            EffectVerdict::TooEarly => core::Verdict::TooEarly,
        }
    }
}

fn decimal(value: f64) -> String {
    let text = format!("{value:.4}");
    // "-0.0000" is zero.
    if text.trim_start_matches('-').bytes().all(|b| b == b'0' || b == b'.') {
        "0.0000".into()
    } else {
        text
    }
}

fn parse(value: &str) -> f64 {
    value.parse().unwrap_or(0.0)
}

fn api_interval(interval: &Interval) -> EffectInterval {
    EffectInterval {
        difference: decimal(interval.difference),
        low: decimal(interval.low),
        high: decimal(interval.high),
    }
}

fn core_interval(interval: &EffectInterval) -> Interval {
    Interval {
        difference: parse(&interval.difference),
        low: parse(&interval.low),
        high: parse(&interval.high),
    }
}

fn api_side(side: &core::Side) -> EffectSide {
    EffectSide {
        sessions: side.sessions,
        occurrences: side.occurrences,
        scored: side.scored,
        outcome: side.outcome.map(decimal),
    }
}

fn core_side(side: &EffectSide) -> core::Side {
    core::Side {
        sessions: side.sessions,
        occurrences: side.occurrences,
        rate: (side.sessions > 0).then(|| f64::from(side.occurrences) / f64::from(side.sessions)),
        outcome: side.outcome.as_deref().map(parse),
        scored: side.scored,
    }
}

/// The effects a proposal carries: the regressed first, then in memory order, at most
/// [`MAX_EFFECTS`].
pub fn api_effects(effects: &core::Effects) -> Vec<LessonEffect> {
    let mut lessons: Vec<&core::LessonEffect> = effects.lessons.iter().collect();
    lessons.sort_by_key(|l| l.verdict != core::Verdict::Regressed);
    lessons
        .into_iter()
        .take(MAX_EFFECTS)
        .map(|l| LessonEffect {
            id: l.id.clone(),
            text: l.text.chars().take(4096).collect(),
            adopted_revision: l.adopted.revision,
            adopted: Time(l.adopted.at),
            before: api_side(&l.before),
            after: api_side(&l.after),
            rate_change: l.rate_change.as_ref().map(api_interval),
            outcome_change: l.outcome_change.as_ref().map(api_interval),
            verdict: l.verdict.into(),
            summary: l.numbers().chars().take(1000).collect(),
        })
        .collect()
}

impl LessonEffect {
    /// The row of the effect table, as `reverie effect` prints it.
    pub fn row(&self) -> core::EffectRow {
        core::EffectRow {
            text: self.text.clone(),
            adopted: core::Adopted {
                revision: self.adopted_revision,
                at: self.adopted.0,
            },
            before: core_side(&self.before),
            after: core_side(&self.after),
            outcome_change: self.outcome_change.as_ref().map(core_interval),
            verdict: self.verdict.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reverie_core::dream::effect::render_table;

    fn measured() -> core::LessonEffect {
        core::LessonEffect {
            id: "lesson-1".into(),
            text: "Look the order up before refunding it.".into(),
            adopted: core::Adopted {
                revision: Some(4),
                at: "2026-11-20T10:00:00Z".parse().unwrap(),
            },
            pattern: Pattern::ToolError {
                tool: "refund".into(),
                error: "order <n> not found".into(),
            },
            before: core::Side {
                sessions: 42,
                occurrences: 13,
                rate: Some(13.0 / 42.0),
                outcome: Some(0.61904761),
                scored: 42,
            },
            after: core::Side {
                sessions: 25,
                occurrences: 1,
                rate: Some(0.04),
                outcome: Some(0.72),
                scored: 25,
            },
            rate_change: Some(Interval {
                difference: 0.04 - 13.0 / 42.0,
                low: -0.41,
                high: -0.1234567,
            }),
            outcome_change: Some(Interval {
                difference: 0.1009,
                low: -0.0000001,
                high: 0.33,
            }),
            verdict: core::Verdict::Effective,
        }
    }

    #[test]
    fn a_proposal_shows_the_same_table_as_the_laptop_command() {
        let effects = core::Effects {
            lessons: vec![measured()],
        };
        let api = api_effects(&effects);
        assert_eq!(api[0].outcome_change.as_ref().unwrap().low, "0.0000");
        assert_eq!(api[0].before.outcome.as_deref(), Some("0.6190"));
        assert!(
            api[0].summary.starts_with("cut its mistake from 31% to 4% of sessions"),
            "{}",
            api[0].summary
        );
        // Through JSON, as the API server stores it.
        let stored: Vec<LessonEffect> = serde_json::from_str(&serde_json::to_string(&api).unwrap()).unwrap();
        let laptop = render_table(&[effects.lessons[0].row()]);
        let cluster = render_table(&[stored[0].row()]);
        assert_eq!(laptop, cluster);
        assert!(laptop.contains("r4 2026-11-20"), "{laptop}");
        assert!(laptop.contains("31% of 42 → 4% of 25"), "{laptop}");
    }

    #[test]
    fn patterns_round_trip_and_malformed_ones_are_not_measured() {
        let patterns = [
            Pattern::ToolError {
                tool: "refund".into(),
                error: "order <n> not found".into(),
            },
            Pattern::Statement {
                words: vec!["10am".into(), "call".into(), "schedul".into()],
            },
            Pattern::Sequence {
                steps: vec!["lookup".into(), "refund".into()],
            },
            Pattern::Action {
                tool: "escalate".into(),
            },
        ];
        for pattern in patterns {
            let api = api_pattern(&pattern).unwrap();
            assert_eq!(core_pattern(&api), Some(pattern));
        }
        let long = Pattern::ToolError {
            tool: "refund".into(),
            error: "x".repeat(MAX_PATTERN_TEXT + 1),
        };
        assert_eq!(api_pattern(&long), None);
        let hand_written = EvidencePattern {
            kind: PatternKind::ToolError,
            tool: Some("refund".into()),
            error: None,
            words: Vec::new(),
            steps: Vec::new(),
        };
        assert_eq!(core_pattern(&hand_written), None);
    }

    #[test]
    fn regressed_lessons_come_first() {
        let mut regressed = measured();
        regressed.id = "lesson-2".into();
        regressed.verdict = core::Verdict::Regressed;
        let effects = core::Effects {
            lessons: vec![measured(), regressed],
        };
        let ids: Vec<String> = api_effects(&effects).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["lesson-2", "lesson-1"]);
    }
}
