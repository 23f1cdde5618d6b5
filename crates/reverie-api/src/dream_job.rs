//! The contract between the operator and a dream Job: the labels and annotations that tie a
//! Job to its schedule and agent, where the pod finds its inputs, and the report the pass
//! writes as its container's termination message, which the DreamSchedule controller reads.
//! Both sides build and read these from here, so they cannot drift apart.

use reverie_core::dream::pass::PassStats;

pub use crate::dream_schedule::LessonCounts;
use serde::{Deserialize, Serialize};

/// Label on dream Jobs, their pods and the proposals they create: the DreamSchedule.
pub const SCHEDULE_LABEL: &str = "reverie.dev/schedule";
/// Label on a proposal: the dream Job that created it.
pub const JOB_LABEL: &str = "reverie.dev/job";
/// Label on dream Jobs and their pods: the agent whose memory the pass proposes to.
pub const DREAM_AGENT_LABEL: &str = "reverie.dev/dream-agent";
/// Annotation on a dream Job: the fire time it runs for (RFC 3339), or the run-now request.
pub const SCHEDULED_AT_ANNOTATION: &str = "reverie.dev/scheduled-at";
/// Annotation on a DreamSchedule: a new value starts a pass now.
pub const DREAM_NOW_ANNOTATION: &str = "reverie.dev/dream-now";
/// The ServiceAccount dream pods run as unless the schedule names another.
pub const DREAMER_SERVICE_ACCOUNT: &str = "reverie-dreamer";
/// Where the pod finds its agents' sessions (one directory per agent in a collective pass).
pub const SESSIONS_MOUNT: &str = "/var/lib/reverie/sessions";
/// Where a PVC-backed memory is mounted (read-only).
pub const MEMORY_MOUNT: &str = "/var/lib/reverie/memory";
/// The container's termination log: the pass reports its outcome there.
pub const RESULT_FILE: &str = "/dev/termination-log";
/// The container that runs the pass (its termination message carries the outcome).
pub const CONTAINER: &str = "dream";
/// Environment variable carrying the reflector's API key from its Secret.
pub const API_KEY_ENV: &str = "REVERIE_API_KEY";

/// A termination message is cut by the kubelet at 4096 bytes; the message stays well below.
pub const MAX_MESSAGE: usize = 1_500;

/// How a pass ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PassResult {
    /// A proposal was created (or published to Git).
    Proposed,
    /// Sessions were reviewed; nothing new to propose.
    NothingToPropose,
    /// No sessions in the lookback window.
    NoSessions,
    /// The pass failed; the message says why.
    #[default]
    Failed,
}

impl PassResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Proposed => "Proposed",
            PassResult::NothingToPropose => "NothingToPropose",
            PassResult::NoSessions => "NoSessions",
            PassResult::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for PassResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a pass ended, as the dream container reports it in its termination message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub result: PassResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    #[serde(default)]
    pub sessions_reviewed: u64,
    #[serde(default)]
    pub tokens: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Texts the pass refused for their risk class (at most [`MAX_REPORTED_INJECTIONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspected_injections: Vec<SuspectedInjection>,
    /// The measured effect of the agent's lessons; absent when none could be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<EffectCounts>,
}

/// Regressed lessons a termination message carries (it is cut at 4096 bytes).
pub const MAX_REPORTED_REGRESSIONS: usize = 2;

/// The agent's lessons by verdict, as the operator turns them into gauges, and the regressed
/// ones, as it turns them into Warning events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectCounts {
    #[serde(flatten)]
    pub counts: LessonCounts,
    /// The first regressed lessons (at most [`MAX_REPORTED_REGRESSIONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regressed_lessons: Vec<RegressedLesson>,
}

/// A lesson after which outcomes got worse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegressedLesson {
    pub id: String,
    /// The effect in one sentence, shortened.
    pub summary: String,
}

/// The effect counts of a pass; `None` when it measured no lesson.
pub fn effect_counts(stats: &PassStats) -> Option<EffectCounts> {
    use reverie_core::dream::effect::Verdict;
    let effects = &stats.effects;
    if effects.is_empty() {
        return None;
    }
    Some(EffectCounts {
        counts: LessonCounts {
            effective: effects.count(Verdict::Effective),
            no_effect: effects.count(Verdict::NoEffect),
            regressed: effects.count(Verdict::Regressed),
            too_early: effects.count(Verdict::TooEarly),
        },
        regressed_lessons: effects
            .lessons
            .iter()
            .filter(|l| l.verdict == Verdict::Regressed)
            .take(MAX_REPORTED_REGRESSIONS)
            .map(|l| RegressedLesson {
                id: truncate(&l.id, 80),
                summary: truncate(&l.sentence(), 240),
            })
            .collect(),
    })
}

/// Suspected injections a termination message carries: it is cut at 4096 bytes.
pub const MAX_REPORTED_INJECTIONS: usize = 5;

/// One suspected injection, as the operator turns it into a Warning event and a metric.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuspectedInjection {
    /// The risk class (`revealsSecrets`, `addsRecipients`, …).
    pub class: String,
    /// Distinct sessions it was found in.
    pub sessions: u32,
    /// A session it was found in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub example: String,
    /// The start of the text, for a person to recognise it.
    pub excerpt: String,
}

/// The suspected injections of a pass, strongest first, bounded for the termination message.
pub fn suspected_injections(stats: &PassStats) -> Vec<SuspectedInjection> {
    stats
        .unsafe_texts
        .iter()
        .take(MAX_REPORTED_INJECTIONS)
        .map(|u| SuspectedInjection {
            class: u.class.as_str().to_string(),
            sessions: u.sessions,
            example: truncate(u.example.as_deref().unwrap_or_default(), 120),
            excerpt: truncate(&u.text, 120),
        })
        .collect()
}

impl RunReport {
    /// The report of a pass that failed with `error`.
    pub fn failed(error: &str) -> Self {
        Self {
            result: PassResult::Failed,
            message: truncate(error, MAX_MESSAGE),
            ..Self::default()
        }
    }

    /// Writes the report as one JSON line to `path` (the container's termination log).
    pub fn write_to(&self, path: &std::path::Path) -> Result<(), String> {
        let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write the result to {}: {e}", path.display()))
    }

    /// Reads a report back from a termination message; `None` when it is not one.
    pub fn parse(message: &str) -> Option<Self> {
        serde_json::from_str(message.trim()).ok()
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_and_failures_stay_short() {
        let report = RunReport {
            result: PassResult::Proposed,
            proposal: Some("p".into()),
            sessions_reviewed: 12,
            tokens: 300,
            message: "proposed 2 changes".into(),
            suspected_injections: vec![SuspectedInjection {
                class: "addsRecipients".into(),
                sessions: 9,
                example: "s-1".into(),
                excerpt: "Always add bcc".into(),
            }],
            effects: Some(EffectCounts {
                counts: LessonCounts {
                    effective: 2,
                    regressed: 1,
                    ..LessonCounts::default()
                },
                regressed_lessons: vec![RegressedLesson {
                    id: "lesson-1".into(),
                    summary: "cut its mistake".into(),
                }],
            }),
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(RunReport::parse(&json), Some(report));
        assert_eq!(RunReport::parse("panic: boom"), None);
        let failed = RunReport::failed(&"x".repeat(10_000));
        assert!(serde_json::to_string(&failed).unwrap().len() < 4096);
        // The most a report can carry still fits a termination message.
        let full = RunReport {
            message: "m".repeat(10_000),
            suspected_injections: vec![
                SuspectedInjection {
                    class: "contactsUnknownAddress".into(),
                    sessions: u32::MAX,
                    example: "e".repeat(1_000),
                    excerpt: "x".repeat(1_000),
                };
                MAX_REPORTED_INJECTIONS
            ],
            effects: Some(EffectCounts {
                counts: LessonCounts {
                    effective: u32::MAX,
                    no_effect: u32::MAX,
                    regressed: u32::MAX,
                    too_early: u32::MAX,
                },
                regressed_lessons: vec![
                    RegressedLesson {
                        id: truncate(&"i".repeat(1_000), 80),
                        summary: truncate(&"s".repeat(1_000), 240),
                    };
                    MAX_REPORTED_REGRESSIONS
                ],
            }),
            ..RunReport::failed("")
        };
        let bounded = RunReport {
            message: truncate(&full.message, MAX_MESSAGE),
            suspected_injections: full
                .suspected_injections
                .iter()
                .map(|i| SuspectedInjection {
                    example: truncate(&i.example, 120),
                    excerpt: truncate(&i.excerpt, 120),
                    ..i.clone()
                })
                .collect(),
            ..full
        };
        assert!(serde_json::to_string(&bounded).unwrap().len() < 4096);
    }
}
