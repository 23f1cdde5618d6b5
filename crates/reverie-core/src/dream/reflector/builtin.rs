//! The builtin reflector: offline and deterministic. It phrases each candidate with enough
//! evidence as an actionable lesson, and writes the summary.

use super::super::model::{Candidate, Lesson, MistakeCause, PatternKind, Reflection};
use super::{ReflectFuture, ReflectRequest, Reflector};
use crate::dream::curate::section_for;

/// The default reflector: no model, no network, same input → same lessons.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinReflector;

impl Reflector for BuiltinReflector {
    fn name(&self) -> &str {
        "builtin"
    }

    fn reflect<'a>(&'a self, request: &'a ReflectRequest<'a>) -> ReflectFuture<'a> {
        let reflection = reflect(request.candidates, request.min_evidence);
        Box::pin(async move { Ok(reflection) })
    }
}

/// Words that open advice inside an error message ("…: use the billing id, not the email").
const ADVICE: &[&str] = &[
    "use ", "try ", "check ", "call ", "provide ", "pass ", "set ", "send ", "must ", "should ", "please ", "do not ",
    "don't ", "only ", "ask ", "wait ", "retry ",
];

fn sentence(text: &str) -> String {
    let text = text.trim().trim_end_matches(['.', '!', ';', ',']);
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    format!("{}{}.", first.to_uppercase(), chars.as_str())
}

fn quote(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

/// The lesson for a recurring tool error: the advice the error carries, else what to check,
/// worded by whose error it is, with how the sessions that got past it did so. The error is
/// quoted with its ids, amounts and dates masked, as a reader will meet it.
fn mistake_text(candidate: &Candidate, tool: &str, error: &str) -> String {
    let error = error.trim();
    let advice = error
        .split_once(": ")
        .map(|(head, tail)| (head, tail.trim()))
        .filter(|(_, tail)| {
            let lower = tail.to_ascii_lowercase();
            ADVICE.iter().any(|a| lower.starts_with(a))
        });
    let sessions = candidate.evidence.count;
    let mut text = match (advice, candidate.cause) {
        (Some((head, advice)), _) => format!(
            "When calling {tool}, {} (otherwise it fails with \"{}\"; {sessions} sessions).",
            advice.trim_end_matches('.'),
            quote(head, 80)
        ),
        (None, Some(MistakeCause::UserData)) => format!(
            "{tool} fails with \"{}\" when a detail the customer gave does not match ({sessions} sessions): confirm the detail with the customer, or look them up another way, instead of retrying the same value.",
            quote(error, 120)
        ),
        (None, _) => format!(
            "{tool} fails with \"{}\" ({sessions} sessions): check the condition this error names before calling {tool}.",
            quote(error, 120)
        ),
    };
    if let Some(recovery) = &candidate.recovery {
        text.push_str(&format!(" {}.", sentence_case(recovery)));
    }
    text
}

/// `text` with its first letter in upper case.
fn sentence_case(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Scoped to a segment when all the evidence sits in one ("In sessions labelled tier=…: …").
fn scoped(candidate: &Candidate, text: String) -> String {
    match &candidate.segment {
        Some(segment) => format!("In sessions labelled {segment}: {text}"),
        None => text,
    }
}

/// The memory text for one candidate.
pub fn lesson_text(candidate: &Candidate) -> String {
    let text = match candidate.kind {
        PatternKind::Mistake => match (&candidate.tool, candidate.excerpts.first()) {
            (Some(tool), Some(error)) => mistake_text(candidate, tool, error),
            _ => format!(
                "Feedback flagged this more than once: \"{}\". Avoid it.",
                quote(&candidate.text, 160)
            ),
        },
        PatternKind::Preference => sentence(&candidate.text),
        PatternKind::Workflow => format!(
            "Steps that go with success: {} ({}).",
            candidate.text,
            candidate
                .numbers
                .as_deref()
                .unwrap_or("recurring in successful sessions")
        ),
        // An observation with its numbers, never an order to call the tool.
        PatternKind::OutcomeCorrelation => match &candidate.numbers {
            Some(numbers) => format!("{}: {numbers}. An observation, not a rule.", candidate.text),
            None => sentence(&candidate.text),
        },
    };
    scoped(candidate, text)
}

/// Lessons for every candidate with at least `min_evidence` sessions, strongest first.
pub fn reflect(candidates: &[Candidate], min_evidence: u32) -> Reflection {
    let lessons: Vec<Lesson> = candidates
        .iter()
        .filter(|c| c.evidence.count >= min_evidence)
        .map(|c| Lesson {
            candidates: vec![c.id.clone()],
            section: section_for(c.kind).to_string(),
            text: lesson_text(c),
        })
        .collect();
    Reflection {
        summary: summary(candidates, min_evidence),
        lessons,
        tokens_in: 0,
        tokens_out: 0,
    }
}

fn summary(candidates: &[Candidate], min_evidence: u32) -> String {
    let strong: Vec<&Candidate> = candidates.iter().filter(|c| c.evidence.count >= min_evidence).collect();
    if strong.is_empty() {
        return format!("Nothing recurred in {min_evidence} or more sessions.");
    }
    let count = |kind| strong.iter().filter(|c| c.kind == kind).count();
    let mut text = format!(
        "Found {} recurring mistakes, {} team preferences, {} workflows and {} outcome correlations, each seen in at least {min_evidence} sessions.",
        count(PatternKind::Mistake),
        count(PatternKind::Preference),
        count(PatternKind::Workflow),
        count(PatternKind::OutcomeCorrelation),
    );
    if let Some(top) = strong.first() {
        text.push_str(&format!(
            " Strongest: \"{}\" ({} sessions).",
            quote(&lesson_text(top), 120),
            top.evidence.count
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dream::model::PatternEvidence;

    fn candidate(kind: PatternKind, text: &str, tool: Option<&str>, excerpt: &str, count: u32) -> Candidate {
        Candidate {
            id: format!("c-{count}"),
            kind,
            text: text.into(),
            key: text.into(),
            evidence: PatternEvidence {
                count,
                ..Default::default()
            },
            agents: 1,
            excerpts: vec![excerpt.into()],
            outcome_lift: None,
            tool: tool.map(str::to_string),
            ..Candidate::default()
        }
    }

    #[test]
    fn tool_errors_with_advice_become_instructions() {
        let c = candidate(
            PatternKind::Mistake,
            "x",
            Some("lookup_account"),
            "account 88231 not found: use the billing id, not the email",
            12,
        );
        assert_eq!(
            lesson_text(&c),
            "When calling lookup_account, use the billing id, not the email (otherwise it fails with \"account 88231 not found\"; 12 sessions)."
        );
        let plain = candidate(PatternKind::Mistake, "x", Some("issue_refund"), "invoice too old", 4);
        assert_eq!(
            lesson_text(&plain),
            "issue_refund fails with \"invoice too old\" (4 sessions): check the condition this error names before calling issue_refund."
        );
    }

    #[test]
    fn customer_data_errors_recovery_and_segments_are_worded_for_a_person() {
        let mut c = candidate(PatternKind::Mistake, "x", Some("find_user"), "Error: User not found", 6);
        c.cause = Some(MistakeCause::UserData);
        c.recovery = Some("4 of the 5 sessions that got past it called find_by_name next".into());
        c.segment = Some("tier=enterprise".into());
        assert_eq!(
            lesson_text(&c),
            "In sessions labelled tier=enterprise: find_user fails with \"Error: User not found\" when a detail the customer gave does not match (6 sessions): confirm the detail with the customer, or look them up another way, instead of retrying the same value. 4 of the 5 sessions that got past it called find_by_name next."
        );
    }

    #[test]
    fn preferences_read_as_rules_and_thresholds_hold() {
        let p = candidate(
            PatternKind::Preference,
            "please never book anything on friday afternoons!",
            None,
            "",
            5,
        );
        assert_eq!(lesson_text(&p), "Please never book anything on friday afternoons.");
        let weak = candidate(PatternKind::Preference, "call me maybe", None, "", 2);
        let reflection = reflect(&[p, weak], 3);
        assert_eq!(reflection.lessons.len(), 1);
        assert_eq!(reflection.lessons[0].section, "preferences");
        assert!(
            reflection
                .summary
                .starts_with("Found 0 recurring mistakes, 1 team preferences")
        );
    }
}
