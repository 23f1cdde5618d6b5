//! Generated before/after corpora with known truths: sessions are drawn with a chosen rate of
//! the pattern and a chosen outcome on each side of an adoption, and the meter must find the
//! verdict and intervals that hold the true differences.

use super::*;
use crate::dream::rules::RuleSources;
use crate::memory::document::{EntryKind, Evidence, Provenance, Section};
use crate::rng::Rng;

const ADOPTED_AT: i64 = 1_800_000_000;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn lesson(id: &str, pattern: Pattern, revision: Option<u64>) -> Entry {
    Entry {
        id: id.into(),
        text: format!("lesson {id}"),
        kind: EntryKind::Lesson,
        evidence: Evidence {
            count: 5,
            pattern: Some(pattern),
            ..Evidence::default()
        },
        provenance: Some(Provenance {
            source: "dream-1".into(),
            approved_by: Some("ana".into()),
            at: at(ADOPTED_AT - 3_600),
            revision,
            applied: Some(at(ADOPTED_AT)),
        }),
        created: at(ADOPTED_AT - 7_200),
        reinforced: None,
        pinned: false,
    }
}

fn memory(entries: Vec<Entry>) -> MemoryDocument {
    MemoryDocument {
        sections: vec![Section {
            name: "lessons".into(),
            entries,
        }],
        ..MemoryDocument::default()
    }
}

fn refund_error() -> Pattern {
    Pattern::ToolError {
        tool: "refund".into(),
        error: normalize_error("order 1234 is not refundable yet"),
    }
}

/// How one side of a generated corpus behaves.
#[derive(Clone, Copy)]
struct Draw {
    sessions: u32,
    /// Chance the refund error occurs in a session.
    error: f64,
    /// Chance a session succeeds (outcome score 1, else 0).
    success: f64,
}

/// Streams `before` sessions (started before adoption, revision 1) then `after` sessions
/// (started after, revision 2) into `meter`.
fn stream_corpus(meter: &mut EffectMeter, seed: u64, before: Draw, after: Draw) {
    let mut rng = Rng::new(seed);
    let sides = [(before, -1_i64, 1_u64), (after, 1, 2)];
    let mut index = 0_i64;
    for (draw, sign, revision) in sides {
        for _ in 0..draw.sessions {
            index += 1;
            let meta = session_meta(
                format!("s-{index}"),
                at(ADOPTED_AT + sign * (100_000 - index * 10)),
                Some(revision),
            );
            meter.start_session(&meta);
            meter.record(Record::ToolCall {
                name: "lookup_order",
                values: &[],
                ts: None,
            });
            meter.record(Record::ToolCall {
                name: "refund",
                values: &[],
                ts: None,
            });
            let error = format!("order {} is not refundable yet", 1000 + index);
            let failed = rng.chance(draw.error);
            meter.record(Record::ToolResult {
                name: "refund",
                ok: !failed,
                error: failed.then_some(error.as_str()),
                ts: None,
            });
            meter.record(Record::Outcome {
                success: Some(rng.chance(draw.success)),
                score: None,
                ts: None,
            });
            meter.end_session();
        }
    }
}

/// A session of no agent, labels or file: what the meter reads of one.
fn session_meta(id: String, started: Timestamp, memory_revision: Option<u64>) -> SessionMeta {
    SessionMeta {
        id,
        agent: None,
        started,
        labels: Default::default(),
        path: Default::default(),
        bytes: 0,
        format: Default::default(),
        memory_revision,
    }
}

fn measure(entries: Vec<Entry>, seed: u64, before: Draw, after: Draw) -> Effects {
    let mut meter = EffectMeter::new(&memory(entries), EffectSettings::default(), RuleSources::default());
    stream_corpus(&mut meter, seed, before, after);
    meter.finish()
}

#[test]
fn a_mistake_that_stops_after_adoption_is_effective() {
    let before = Draw {
        sessions: 80,
        error: 0.4,
        success: 0.7,
    };
    let after = Draw {
        sessions: 80,
        error: 0.05,
        success: 0.7,
    };
    for seed in 1..=20 {
        let effects = measure(vec![lesson("l-1", refund_error(), Some(2))], seed, before, after);
        let effect = effects.get("l-1").unwrap();
        assert_eq!(effect.verdict, Verdict::Effective, "seed {seed}: {effect:?}");
        assert_eq!((effect.before.sessions, effect.after.sessions), (80, 80));
        let change = effect.rate_change.unwrap();
        // The true difference is −0.35: a 95% interval misses it rarely, never by much.
        assert!(
            change.low < -0.35 + 0.05 && change.high > -0.35 - 0.05,
            "seed {seed}: {change:?}"
        );
        assert!(change.high < 0.0);
        assert!(
            effect.sentence().starts_with("cut its mistake from"),
            "{}",
            effect.sentence()
        );
    }
}

#[test]
fn a_mistake_that_keeps_recurring_has_no_effect() {
    // Enough sessions that the interval can rule out a meaningful cut (half of 30%).
    let draw = Draw {
        sessions: 300,
        error: 0.3,
        success: 0.6,
    };
    let mut verdicts = Vec::new();
    for seed in 1..=40 {
        let effects = measure(vec![lesson("l-1", refund_error(), Some(2))], seed, draw, draw);
        let effect = effects.get("l-1").unwrap();
        let change = effect.rate_change.unwrap();
        verdicts.push(effect.verdict);
        if effect.verdict == Verdict::NoEffect {
            // Not even the most favourable end of the interval halves the mistake.
            assert!(change.low > -0.15, "{change:?}");
        }
    }
    // Nothing changed: at 95% confidence about one in twenty comparisons looks like a change.
    let no_effect = verdicts.iter().filter(|v| **v == Verdict::NoEffect).count();
    assert!(no_effect >= 34, "{verdicts:?}");
}

#[test]
fn a_lesson_after_which_outcomes_drop_regressed() {
    let before = Draw {
        sessions: 70,
        error: 0.4,
        success: 0.8,
    };
    let after = Draw {
        sessions: 70,
        error: 0.05,
        success: 0.35,
    };
    for seed in 1..=10 {
        let effects = measure(vec![lesson("l-1", refund_error(), Some(2))], seed, before, after);
        let effect = effects.get("l-1").unwrap();
        // The mistake went away, but sessions end worse: that is a regression, whatever else.
        assert_eq!(effect.verdict, Verdict::Regressed, "seed {seed}: {effect:?}");
        let outcome = effect.outcome_change.unwrap();
        assert!(
            outcome.high < 0.0 && outcome.low < -0.45 + 0.1 && outcome.high > -0.45 - 0.1,
            "{outcome:?}"
        );
    }
}

#[test]
fn a_lesson_with_too_few_later_sessions_is_too_early() {
    let before = Draw {
        sessions: 50,
        error: 0.5,
        success: 0.5,
    };
    let after = Draw {
        sessions: DEFAULT_MIN_SESSIONS - 1,
        error: 0.0,
        success: 1.0,
    };
    let effects = measure(vec![lesson("l-1", refund_error(), Some(2))], 7, before, after);
    let effect = effects.get("l-1").unwrap();
    assert_eq!(effect.verdict, Verdict::TooEarly);
    assert_eq!(effect.after.sessions, DEFAULT_MIN_SESSIONS - 1);
    // The numbers are still reported.
    assert_eq!(effect.after.occurrences, 0);
    assert!(effect.rate_change.is_some());
}

#[test]
fn a_rare_pattern_that_stops_is_too_early_to_judge_not_without_effect() {
    // A rule restated in 3 of 32 sessions, then in none of 30: the drop is not beyond chance,
    // and a cut by half is not ruled out either. Archiving it would throw away a rule that
    // may well be followed now.
    let judged = super::judge(
        Tracked {
            id: "l-1".into(),
            text: "t".into(),
            adopted: Adopted {
                revision: Some(2),
                at: at(ADOPTED_AT),
            },
            pattern: refund_error(),
            words: Default::default(),
            steps: Vec::new(),
            before: counts(32, 3),
            after: counts(30, 0),
        },
        &EffectSettings::default(),
    );
    assert_eq!(judged.verdict, Verdict::TooEarly, "{judged:?}");
    assert!(judged.rate_change.unwrap().low < -0.05 && judged.rate_change.unwrap().high > 0.0);
}

fn counts(sessions: u32, occurrences: u32) -> Counts {
    Counts {
        sessions,
        occurrences,
        outcomes: Default::default(),
    }
}

#[test]
fn sessions_are_attributed_by_revision_and_by_time_without_one() {
    // Adopted in revision 3 at ADOPTED_AT.
    let memory = memory(vec![lesson("l-1", refund_error(), Some(3))]);
    let mut meter = EffectMeter::new(&memory, EffectSettings::default(), RuleSources::default());
    let sessions = [
        // Started after adoption but ran with revision 2 (a pod not yet rolled): before.
        (ADOPTED_AT + 60, Some(2)),
        // Ran with revision 3 or later: after.
        (ADOPTED_AT + 120, Some(3)),
        (ADOPTED_AT + 180, Some(5)),
        // No revision: by time.
        (ADOPTED_AT - 60, None),
        (ADOPTED_AT + 60, None),
    ];
    for (i, (started, revision)) in sessions.into_iter().enumerate() {
        meter.start_session(&session_meta(format!("s-{i}"), at(started), revision));
        meter.end_session();
    }
    let effect = meter.finish().lessons.remove(0);
    assert_eq!((effect.before.sessions, effect.after.sessions), (2, 3));
}

#[test]
fn workflows_statements_and_actions_are_recognised_in_later_sessions() {
    let sequence = Pattern::Sequence {
        steps: vec!["lookup_order".into(), "refund".into()],
    };
    let statement = Pattern::Statement {
        words: content_words("Never schedule calls before 10am").into_iter().collect(),
    };
    let action = Pattern::Action {
        tool: "escalate".into(),
    };
    let memory = memory(vec![
        lesson("w", sequence, Some(2)),
        lesson("s", statement, Some(2)),
        lesson("a", action, Some(2)),
    ]);
    let mut meter = EffectMeter::new(&memory, EffectSettings::default(), RuleSources::default());
    let meta = |i: u32| session_meta(format!("s-{i}"), at(ADOPTED_AT + 10), Some(2));
    // Session 0: the sequence with a repeat in between (collapsed), a restated rule in other
    // words, and the action.
    meter.start_session(&meta(0));
    for name in ["lookup_order", "lookup_order", "refund", "escalate"] {
        meter.record(Record::ToolCall {
            name,
            values: &[],
            ts: None,
        });
    }
    meter.record(Record::Feedback {
        from: "reviewer",
        rating: Some(-1.0),
        text: "Again: please never schedule the calls before 10am.",
        ts: None,
    });
    meter.end_session();
    // Session 1: another tool between the steps breaks the sequence; nothing else.
    meter.start_session(&meta(1));
    for name in ["lookup_order", "search", "refund"] {
        meter.record(Record::ToolCall {
            name,
            values: &[],
            ts: None,
        });
    }
    // A customer saying the rule is a request, not a restatement the team had to make.
    meter.record(Record::Message {
        role: Role::User,
        text: "Please never schedule calls before 10am, thanks, that is all.",
        ts: None,
    });
    meter.end_session();
    let effects = meter.finish();
    for id in ["w", "s", "a"] {
        let effect = effects.get(id).unwrap();
        assert_eq!(
            (effect.after.sessions, effect.after.occurrences),
            (2, 1),
            "{id}: {effect:?}"
        );
    }
}

#[test]
fn a_workflow_that_became_common_is_effective_and_entries_without_a_pattern_are_not_measured() {
    let sequence = Pattern::Sequence {
        steps: vec!["lookup_order".into(), "refund".into()],
    };
    let mut plain = lesson("plain", refund_error(), Some(2));
    plain.evidence.pattern = None;
    let memory = memory(vec![lesson("w", sequence, Some(2)), plain]);
    let mut meter = EffectMeter::new(&memory, EffectSettings::default(), RuleSources::default());
    for i in 0..40 {
        let after = i >= 20;
        meter.start_session(&session_meta(
            format!("s-{i}"),
            at(ADOPTED_AT),
            Some(if after { 2 } else { 1 }),
        ));
        // Before: the steps in 4 of 20 sessions; after: in 18 of 20.
        let follows = if after { i % 10 != 0 } else { i % 5 == 0 };
        let tools: &[&str] = if follows {
            &["lookup_order", "refund"]
        } else {
            &["refund"]
        };
        for name in tools {
            meter.record(Record::ToolCall {
                name,
                values: &[],
                ts: None,
            });
        }
        meter.end_session();
    }
    let effects = meter.finish();
    assert_eq!(effects.lessons.len(), 1);
    let effect = &effects.lessons[0];
    assert_eq!((effect.before.occurrences, effect.after.occurrences), (4, 18));
    assert_eq!(effect.verdict, Verdict::Effective);
    assert!(
        effect.sentence().starts_with("raised the workflow from 20% to 90%"),
        "{}",
        effect.sentence()
    );
    // No outcomes were reported: no outcome interval.
    assert!(effect.outcome_change.is_none());
}
