//! Scoring a dream pass over a *real* corpus against an analyst's truth file (`truth.json`):
//! one item per pattern a careful person found in the transcripts, each with a verdict saying
//! whether proposing it as a lesson helps, is harmless, or is wrong.
//!
//! Every proposed lesson (an `Add` or `Update` change) is given a kind from its section and
//! text, then matched to the truth items of the same scope and kind:
//!
//! - a **mistake** must name the item's tool and share at least half of its content words with
//!   one of the item's key phrases (counted against the smaller of the two word sets);
//! - a **preference** needs the same word overlap, without a tool;
//! - a **workflow** must name exactly the item's steps: its tool-like words (identifiers with
//!   an underscore) are the steps, each as often as the sequence has it;
//! - an **outcome correlation** matches on the tool it is about.
//!
//! The matched item's verdict makes the lesson useful, neutral or false; a lesson matching
//! nothing is false. Recall is over the items the analyst expects to be proposed.
//!
//! Pure: no I/O except [`load`].

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::{fs, io};

use serde::{Deserialize, Serialize};

use reverie_core::dream::report::ChangeView;

/// The kind of pattern a truth item (or a proposed lesson) is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthKind {
    Mistake,
    Preference,
    Workflow,
    OutcomeCorrelation,
    /// A kind this scorer does not know: such items match no lesson.
    #[serde(other)]
    Other,
}

/// One pattern of the analyst's truth. Fields the scorer does not use are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthItem {
    /// A session folder of the corpus (`retail`, …) or `all` for the whole tree.
    pub scope: String,
    pub kind: TruthKind,
    /// `expected`, `must_not_propose`, `not_a_preference`, … (see [`Verdict::of`]).
    pub verdict: String,
    /// Mistakes: the tool that fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
    /// Mistakes and preferences: normalised and verbatim wordings. Workflows: the steps, one
    /// per phrase (or one phrase `a → b → c`). Outcome correlations: the tool.
    #[serde(default)]
    pub key_phrases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyst_lesson: Option<String>,
}

/// Reads a truth file: a JSON array of [`TruthItem`].
pub fn load(path: &Path) -> io::Result<Vec<TruthItem>> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One change of a pass, as far as scoring needs it (the `changes[]` of `reverie dream --output json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoredChange {
    pub op: String,
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub text: String,
}

impl From<&ChangeView> for ScoredChange {
    fn from(change: &ChangeView) -> Self {
        Self {
            op: change.op.to_string(),
            section: (!change.section.is_empty()).then(|| change.section.clone()),
            text: change.text.clone(),
        }
    }
}

impl ScoredChange {
    /// Only additions and rewrites propose a lesson; the other ops restructure or archive.
    fn proposes(&self) -> bool {
        matches!(self.op.as_str(), "Add" | "Update")
    }
}

/// What proposing a truth item as a lesson is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Useful,
    Neutral,
    False,
}

impl Verdict {
    /// The bucket of a truth verdict; anything not known to help or be harmless is false.
    pub fn of(verdict: &str) -> Self {
        match verdict {
            "expected" | "recurring_informative_supported" | "meets_rule_supported_within_task" => Self::Useful,
            "debatable_customer_preference"
            | "expected_user_caused"
            | "recurring_informative"
            | "meets_rule_no_within_task_evidence" => Self::Neutral,
            _ => Self::False,
        }
    }
}

/// The bar a pass over a real corpus has to clear.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityBar {
    pub min_recall: f64,
    pub min_precision: f64,
    pub max_proposed: usize,
}

impl Default for QualityBar {
    fn default() -> Self {
        Self {
            min_recall: 0.9,
            min_precision: 0.8,
            max_proposed: 15,
        }
    }
}

/// A proposed lesson counted false.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FalseChange {
    pub kind: TruthKind,
    /// The matched item's verdict, or `unmatched`.
    pub verdict: String,
    /// The first 80 characters of the lesson.
    pub text: String,
}

/// An expected item no useful lesson matched.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissedItem {
    pub kind: TruthKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub key_phrase: String,
}

/// How a pass fared against the truth of one scope.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthScore {
    pub scope: String,
    /// Items of the scope the analyst expects to be proposed (verdict `expected`).
    pub expected: usize,
    /// Of those, matched by a proposed lesson.
    pub found: usize,
    /// `found / expected`; 1 when the scope expects nothing.
    pub recall: f64,
    /// `useful / (useful + false)`; 1 when that is `0 / 0` (see `precision_vacuous`).
    pub precision: f64,
    /// Nothing useful could be or was proposed and nothing false was: precision 1 says nothing.
    pub precision_vacuous: bool,
    pub useful: usize,
    pub neutral: usize,
    #[serde(rename = "false")]
    pub false_count: usize,
    /// Every `Add` and `Update` change.
    pub proposed: usize,
    pub false_changes: Vec<FalseChange>,
    pub missed: Vec<MissedItem>,
}

impl TruthScore {
    pub fn passes(&self, bar: &QualityBar) -> bool {
        self.misses(bar).is_empty()
    }

    /// The parts of `bar` this score misses, one phrase each (empty when it passes).
    pub fn misses(&self, bar: &QualityBar) -> Vec<String> {
        let mut misses = Vec::new();
        if self.recall < bar.min_recall {
            misses.push(format!("recall {:.2} < {:.2}", self.recall, bar.min_recall));
        }
        if self.precision < bar.min_precision {
            misses.push(format!("precision {:.2} < {:.2}", self.precision, bar.min_precision));
        }
        if self.proposed > bar.max_proposed {
            misses.push(format!("{} proposed > {}", self.proposed, bar.max_proposed));
        }
        misses
    }

    /// One line: `real[retail] recall=1.00 (2/2) precision=0.86 useful=6 neutral=2 false=1 proposed=9`.
    pub fn summary_line(&self) -> String {
        let mut line = format!(
            "real[{}] recall={:.2} ({}/{}) precision={:.2}",
            self.scope, self.recall, self.found, self.expected, self.precision
        );
        if self.precision_vacuous {
            line.push_str(" (vacuous)");
        }
        let _ = write!(
            line,
            " useful={} neutral={} false={} proposed={}",
            self.useful, self.neutral, self.false_count, self.proposed
        );
        line
    }
}

/// Scores `changes` against the items of `scope` in `items`.
pub fn score(items: &[TruthItem], scope: &str, changes: &[ScoredChange]) -> TruthScore {
    let items: Vec<Prepared<'_>> = items.iter().filter(|t| t.scope == scope).map(Prepared::new).collect();
    let mut found = vec![false; items.len()];
    let (mut useful, mut neutral, mut false_count, mut proposed) = (0, 0, 0, 0);
    let mut false_changes = Vec::new();
    for change in changes.iter().filter(|c| c.proposes()) {
        proposed += 1;
        let kind = kind_of(change);
        let matched = best_match(&items, kind, &change.text);
        let verdict = matched.map_or("unmatched", |i| items[i].item.verdict.as_str());
        match Verdict::of(verdict) {
            Verdict::Useful => {
                useful += 1;
                if let Some(i) = matched {
                    found[i] = true;
                }
            }
            Verdict::Neutral => neutral += 1,
            Verdict::False => {
                false_count += 1;
                false_changes.push(FalseChange {
                    kind,
                    verdict: verdict.to_string(),
                    text: change.text.chars().take(80).collect(),
                });
            }
        }
    }
    let expected: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].item.verdict == "expected")
        .collect();
    let found_expected = expected.iter().filter(|&&i| found[i]).count();
    let missed = expected
        .iter()
        .filter(|&&i| !found[i])
        .map(|&i| MissedItem {
            kind: items[i].item.kind,
            tool: items[i].item.tool.clone(),
            key_phrase: items[i].item.key_phrases.first().cloned().unwrap_or_default(),
        })
        .collect();
    let recall = if expected.is_empty() {
        1.0
    } else {
        found_expected as f64 / expected.len() as f64
    };
    let judged = useful + false_count;
    TruthScore {
        scope: scope.to_string(),
        expected: expected.len(),
        found: found_expected,
        recall,
        precision: if judged == 0 {
            1.0
        } else {
            useful as f64 / judged as f64
        },
        precision_vacuous: judged == 0,
        useful,
        neutral,
        false_count,
        proposed,
        false_changes,
        missed,
    }
}

/// A truth item with what matching needs computed once.
struct Prepared<'a> {
    item: &'a TruthItem,
    /// Content words of each key phrase.
    phrase_words: Vec<BTreeSet<String>>,
    /// Workflows: the steps in order.
    steps: Vec<&'a str>,
    /// Mistakes and outcome correlations: the tool the lesson must name.
    tool: Option<&'a str>,
}

impl<'a> Prepared<'a> {
    fn new(item: &'a TruthItem) -> Self {
        let steps = match item.kind {
            TruthKind::Workflow => item
                .key_phrases
                .iter()
                .flat_map(|p| p.split(['→', ',']).flat_map(|s| s.split("->")))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        let tool = match item.kind {
            TruthKind::Mistake => item.tool.as_deref(),
            // Correlation items name their tool as the key phrase.
            TruthKind::OutcomeCorrelation => item
                .tool
                .as_deref()
                .or_else(|| item.key_phrases.first().map(String::as_str)),
            _ => None,
        }
        .map(str::trim)
        .filter(|t| !t.is_empty());
        Self {
            item,
            phrase_words: item.key_phrases.iter().map(|p| content_words(p)).collect(),
            steps,
            tool,
        }
    }

    /// How well a lesson of kind `kind` with `text` matches, 0 for not at all; a match needs
    /// at least [`MATCH_THRESHOLD`].
    fn affinity(&self, kind: TruthKind, text: &str, words: &BTreeSet<String>, identifiers: &[&str]) -> f64 {
        if self.item.kind != kind {
            return 0.0;
        }
        if let Some(tool) = self.tool
            && !identifiers.contains(&tool)
        {
            return 0.0;
        }
        match kind {
            TruthKind::Mistake | TruthKind::Preference => {
                self.phrase_words.iter().map(|p| overlap(words, p)).fold(0.0, f64::max)
            }
            TruthKind::OutcomeCorrelation => 1.0,
            TruthKind::Workflow => self.workflow_affinity(text),
            TruthKind::Other => 0.0,
        }
    }

    /// 1 when the text's tool-like words are the steps (each step named, and nothing else, as
    /// often as the sequence has it); 2 when they are also in the same order, so that of
    /// `a → b` and `b → a` the lesson picks the item it spells out. A step repeated at once
    /// (`a → a → b`, a retry or a second look-up) is one step on both sides: reverie reports
    /// sequences with repeats collapsed, and an analyst's table may not.
    fn workflow_affinity(&self, text: &str) -> f64 {
        if self.steps.is_empty() {
            return 0.0;
        }
        let mut named: Vec<&str> = identifiers(text)
            .into_iter()
            .filter(|w| w.len() >= 3 && (w.contains('_') || self.steps.contains(w)))
            .collect();
        named.dedup();
        let mut steps = self.steps.clone();
        steps.dedup();
        if named == steps {
            return 2.0;
        }
        let (mut named, mut steps) = (named, steps);
        named.sort_unstable();
        steps.sort_unstable();
        if named == steps { 1.0 } else { 0.0 }
    }
}

/// The lowest affinity that counts as a match.
const MATCH_THRESHOLD: f64 = 0.5;

/// The item a lesson matches: the one with the highest affinity (the first of equals).
fn best_match(items: &[Prepared<'_>], kind: TruthKind, text: &str) -> Option<usize> {
    let words = content_words(text);
    let identifiers = identifiers(text);
    let mut best: Option<(usize, f64)> = None;
    for (i, item) in items.iter().enumerate() {
        let affinity = item.affinity(kind, text, &words, &identifiers);
        if affinity >= MATCH_THRESHOLD && best.is_none_or(|(_, b)| affinity > b) {
            best = Some((i, affinity));
        }
    }
    best.map(|(i, _)| i)
}

/// The kind of pattern a proposed lesson is about, from its text and section.
fn kind_of(change: &ScoredChange) -> TruthKind {
    let text = change.text.to_lowercase();
    if text.contains("correlat") || (text.contains("score") && text.contains("on average")) {
        return TruthKind::OutcomeCorrelation;
    }
    let section = change.section.as_deref().unwrap_or_default().trim().to_lowercase();
    if section.starts_with("pref") {
        TruthKind::Preference
    } else if section.starts_with("workflow") {
        TruthKind::Workflow
    } else {
        TruthKind::Mistake
    }
}

/// Words that carry no content.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "was", "not", "with", "from", "its", "this", "that", "please", "your", "you",
];

/// The lowercase words of `text` (letters and underscores) longer than two letters, minus stop words.
fn content_words(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .filter(|w| w.len() > 2 && !STOP_WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

/// Shared words over the size of the smaller set.
fn overlap(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let shared = a.intersection(b).count();
    shared as f64 / a.len().min(b.len()).max(1) as f64
}

/// The identifier-like words of `text` (letters, digits, underscores), in order.
fn identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(scope: &str, kind: TruthKind, verdict: &str, tool: Option<&str>, phrases: &[&str]) -> TruthItem {
        TruthItem {
            scope: scope.to_string(),
            kind,
            verdict: verdict.to_string(),
            tool: tool.map(str::to_string),
            sessions: Vec::new(),
            key_phrases: phrases.iter().map(|p| p.to_string()).collect(),
            analyst_lesson: None,
        }
    }

    fn change(op: &str, section: &str, text: &str) -> ScoredChange {
        ScoredChange {
            op: op.to_string(),
            section: Some(section.to_string()),
            text: text.to_string(),
        }
    }

    /// A small made-up shop: one real agent mistake, one user-caused one, a confirmation that
    /// is no preference, a workflow and two outcome correlations.
    fn truth() -> Vec<TruthItem> {
        vec![
            item(
                "shop",
                TruthKind::Mistake,
                "expected",
                Some("refund_payment"),
                &["refund exceeds the captured amount"],
            ),
            item(
                "shop",
                TruthKind::Mistake,
                "expected_user_caused",
                Some("lookup_customer"),
                &["customer does not exist"],
            ),
            item(
                "shop",
                TruthKind::Preference,
                "not_a_preference",
                None,
                &["sure, go ahead with that please"],
            ),
            item(
                "shop",
                TruthKind::Workflow,
                "recurring_informative_supported",
                None,
                &["lookup_customer", "list_orders"],
            ),
            item(
                "shop",
                TruthKind::OutcomeCorrelation,
                "meets_rule_supported_within_task",
                None,
                &["verify_address"],
            ),
            item(
                "shop",
                TruthKind::OutcomeCorrelation,
                "meets_rule_likely_task_confounded",
                None,
                &["apply_coupon"],
            ),
            // Another scope's expected mistake does not count here.
            item(
                "garage",
                TruthKind::Mistake,
                "expected",
                Some("book_slot"),
                &["slot already taken"],
            ),
        ]
    }

    #[test]
    fn an_expected_mistake_found_gives_full_recall() {
        let changes = [change(
            "Add",
            "mistakes",
            "refund_payment fails when the refund exceeds the captured amount: check it first.",
        )];
        let score = score(&truth(), "shop", &changes);
        assert_eq!((score.expected, score.found), (1, 1));
        assert_eq!(score.recall, 1.0);
        assert_eq!(
            (score.useful, score.neutral, score.false_count, score.proposed),
            (1, 0, 0, 1)
        );
        assert_eq!(score.precision, 1.0);
        assert!(!score.precision_vacuous);
        assert!(score.missed.is_empty());
        assert!(score.passes(&QualityBar::default()));
        assert_eq!(
            score.summary_line(),
            "real[shop] recall=1.00 (1/1) precision=1.00 useful=1 neutral=0 false=0 proposed=1"
        );
    }

    #[test]
    fn a_mistake_needs_its_tool_and_the_words() {
        // The right words about another tool, and the right tool with other words: no match.
        let changes = [
            change(
                "Add",
                "mistakes",
                "issue_credit fails when the refund exceeds the captured amount.",
            ),
            change("Add", "mistakes", "refund_payment times out on weekends."),
            change(
                "Add",
                "mistakes",
                "lookup_customer says the customer does not exist: ask again.",
            ),
        ];
        let score = score(&truth(), "shop", &changes);
        assert_eq!((score.found, score.recall), (0, 0.0));
        assert_eq!((score.useful, score.neutral, score.false_count), (0, 1, 2));
        assert_eq!(score.missed.len(), 1);
        assert_eq!(score.missed[0].tool.as_deref(), Some("refund_payment"));
        assert!(score.false_changes.iter().all(|f| f.verdict == "unmatched"));
        assert!(!score.passes(&QualityBar::default()));
    }

    #[test]
    fn a_confirmation_proposed_as_a_preference_is_false() {
        let changes = [change("Add", "preferences", "Sure, go ahead with that.")];
        let score = score(&truth(), "shop", &changes);
        assert_eq!((score.useful, score.false_count), (0, 1));
        assert_eq!(score.precision, 0.0);
        assert_eq!(
            score.false_changes,
            [FalseChange {
                kind: TruthKind::Preference,
                verdict: "not_a_preference".to_string(),
                text: "Sure, go ahead with that.".to_string(),
            }]
        );
    }

    #[test]
    fn a_workflow_matches_only_with_exactly_its_steps() {
        let exact = change(
            "Add",
            "workflows",
            "In cases that went well the steps were lookup_customer → list_orders; follow this order.",
        );
        let extra = change(
            "Add",
            "workflows",
            "In cases that went well the steps were lookup_customer → list_orders → cancel_order.",
        );
        let score_of = |c: &ScoredChange| score(&truth(), "shop", std::slice::from_ref(c));
        assert_eq!(score_of(&exact).useful, 1);
        let extra = score_of(&extra);
        assert_eq!((extra.useful, extra.false_count), (0, 1));
        assert_eq!(extra.false_changes[0].kind, TruthKind::Workflow);
        assert_eq!(extra.false_changes[0].verdict, "unmatched");
    }

    #[test]
    fn a_repeated_step_does_not_stand_for_other_steps() {
        let items = vec![item(
            "s",
            TruthKind::Workflow,
            "recurring_uninformative",
            None,
            &["a_step", "a_step", "a_step"],
        )];
        let score = score(&items, "s", &[change("Add", "workflows", "a_step → b_step → c_step")]);
        assert_eq!(score.false_changes[0].verdict, "unmatched");
        let score = super::score(&items, "s", &[change("Add", "workflows", "a_step → a_step → a_step")]);
        assert_eq!(score.false_changes[0].verdict, "recurring_uninformative");
    }

    #[test]
    fn a_step_repeated_at_once_is_one_step_on_both_sides() {
        let items = vec![item(
            "s",
            TruthKind::Workflow,
            "recurring_uninformative",
            None,
            &["a_step", "a_step", "b_step", "c_step"],
        )];
        let score = score(&items, "s", &[change("Add", "workflows", "a_step → b_step → c_step")]);
        assert_eq!(score.false_changes[0].verdict, "recurring_uninformative");
    }

    #[test]
    fn workflow_steps_may_be_one_arrowed_phrase_and_order_breaks_ties() {
        let items = vec![
            item(
                "s",
                TruthKind::Workflow,
                "recurring_uninformative",
                None,
                &["b_step -> a_step"],
            ),
            item(
                "s",
                TruthKind::Workflow,
                "recurring_informative_supported",
                None,
                &["a_step → b_step"],
            ),
        ];
        let score = score(
            &items,
            "s",
            &[change("Add", "workflows", "Steps: a_step, then b_step.")],
        );
        assert_eq!(score.useful, 1);
    }

    #[test]
    fn correlations_match_on_their_tool() {
        let changes = [
            change(
                "Add",
                "workflows",
                "Sessions that call verify_address score 0.90 on average, 0.40 without it.",
            ),
            change("Add", "mistakes", "Calling apply_coupon correlates with success."),
            change("Add", "workflows", "Using gift_wrap correlates with success."),
        ];
        let score = score(&truth(), "shop", &changes);
        assert_eq!((score.useful, score.false_count), (1, 2));
        let verdicts: Vec<&str> = score.false_changes.iter().map(|f| f.verdict.as_str()).collect();
        assert_eq!(verdicts, ["meets_rule_likely_task_confounded", "unmatched"]);
        assert!(
            score
                .false_changes
                .iter()
                .all(|f| f.kind == TruthKind::OutcomeCorrelation)
        );
    }

    #[test]
    fn precision_is_vacuous_when_nothing_useful_or_false_was_proposed() {
        // Only a neutral lesson, in a scope expecting nothing.
        let items = vec![item(
            "s",
            TruthKind::Preference,
            "debatable_customer_preference",
            None,
            &["customer wants the cheapest option"],
        )];
        let changes = [change("Add", "preferences", "The customer wants the cheapest option.")];
        let score = score(&items, "s", &changes);
        assert_eq!((score.useful, score.neutral, score.false_count), (0, 1, 0));
        assert_eq!((score.recall, score.precision), (1.0, 1.0));
        assert!(score.precision_vacuous);
        assert!(score.summary_line().contains("precision=1.00 (vacuous)"));
        let json = serde_json::to_value(&score).expect("serializable");
        assert_eq!(json["precisionVacuous"], true);
        assert_eq!(json["false"], 0);
        // Nothing at all proposed is vacuous too.
        assert!(super::score(&items, "s", &[]).precision_vacuous);
    }

    #[test]
    fn only_additions_and_updates_are_proposals() {
        let text = "refund_payment fails when the refund exceeds the captured amount.";
        let changes = [
            change("Reinforce", "mistakes", text),
            change("Archive", "mistakes", "Something long gone."),
            change("Merge", "mistakes", text),
        ];
        let score = score(&truth(), "shop", &changes);
        assert_eq!(
            (score.proposed, score.useful, score.false_count, score.found),
            (0, 0, 0, 0)
        );
        let update = super::score(&truth(), "shop", &[change("Update", "mistakes", text)]);
        assert_eq!((update.proposed, update.found), (1, 1));
    }

    #[test]
    fn the_bar_counts_proposals() {
        let text = "refund_payment fails when the refund exceeds the captured amount.";
        let changes = vec![change("Add", "mistakes", text); 3];
        let score = score(&truth(), "shop", &changes);
        let bar = QualityBar {
            max_proposed: 2,
            ..QualityBar::default()
        };
        assert_eq!(score.misses(&bar), ["3 proposed > 2"]);
    }

    #[test]
    fn truth_files_may_carry_extra_fields_and_kinds() {
        let json = r#"[{"scope":"s","kind":"mistake","verdict":"expected","tool":"t_x","key_phrases":["boom"],
            "sessions":["a"],"occurrences":4,"note":"n"},
            {"scope":"s","kind":"something_new","verdict":"expected"}]"#;
        let items: Vec<TruthItem> = serde_json::from_str(json).expect("tolerant");
        assert_eq!(items[0].tool.as_deref(), Some("t_x"));
        assert_eq!(items[1].kind, TruthKind::Other);
        // An item of an unknown kind is still expected, and nothing can match it.
        let score = score(&items, "s", &[change("Add", "mistakes", "t_x: boom")]);
        assert_eq!((score.expected, score.found), (2, 1));
    }
}
