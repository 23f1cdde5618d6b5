//! Rules, not requests: whether a sentence states a standing rule about the agent's behaviour.
//!
//! A rule generalises ("always", "never", "from now on", "every time", "in future", "stop
//! doing") or corrects the agent ("next time", "you should have"). A one-off request ("please
//! cancel it"), a confirmation ("yes, please proceed"), an answer, a question or a statement
//! about the speaker ("I don't have my reservation id") is not a rule, whoever says it.
//! Feedback is about the agent's conduct by its nature, so there an imperative ("use email for
//! follow-ups", "no calls before 10am") is a rule too; in a conversation it is a request.
//!
//! Who may state rules at all is the trust boundary, decided by the caller ([`RuleSources`]).

use serde::{Deserialize, Serialize};

/// Where a sentence was said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Said {
    /// In a conversation message.
    Message,
    /// In a feedback record.
    Feedback,
}

/// Who may teach the agent a rule (`spec.dreaming.ruleSources` of an Agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSources {
    /// `from` values of feedback whose rules count (reviewers, operators, graders by default).
    pub feedback_from: Vec<String>,
    /// Sessions whose labels match all of these are the team's own: their user messages and
    /// feedback may state rules. Empty: no session is.
    pub team_sessions: Vec<(String, Option<String>)>,
    /// Whether end customers' messages and feedback may state rules (off by default: an agent
    /// would learn whatever its customers repeat).
    pub customers: bool,
}

impl Default for RuleSources {
    fn default() -> Self {
        Self {
            feedback_from: DEFAULT_FEEDBACK_FROM.iter().map(|s| s.to_string()).collect(),
            team_sessions: Vec::new(),
            customers: false,
        }
    }
}

/// Feedback sources trusted to state rules unless the Agent says otherwise.
pub const DEFAULT_FEEDBACK_FROM: &[&str] = &["reviewer", "operator", "grader"];

impl RuleSources {
    /// Whether a session with these labels is the team's own.
    pub fn is_team_session<'a>(&self, mut label: impl FnMut(&str) -> Option<&'a str>) -> bool {
        !self.team_sessions.is_empty()
            && self.team_sessions.iter().all(|(key, value)| match (label(key), value) {
                (Some(_), None) => true,
                (Some(have), Some(want)) => have == want,
                (None, _) => false,
            })
    }

    /// Whether feedback `from` this source, in a session of the team or not, may state rules.
    pub fn trusts_feedback(&self, from: &str, team_session: bool) -> bool {
        team_session || self.customers || self.feedback_from.iter().any(|f| f == from)
    }

    /// Whether the user's messages in a session may state rules.
    pub fn trusts_user_messages(&self, team_session: bool) -> bool {
        team_session || self.customers
    }
}

/// Words that make a sentence generalise to every future case.
const GENERALISING: &[&[&str]] = &[
    &["always"],
    &["never"],
    &["from", "now", "on"],
    &["every", "time"],
    &["each", "time"],
    &["any", "time"],
    &["anytime"],
    &["whenever"],
    &["in", "future"],
    &["in", "the", "future"],
    &["going", "forward"],
    &["by", "default"],
    &["as", "a", "rule"],
    &["at", "all", "times"],
    &["no", "more"],
    &["ever", "again"],
    &["from", "here", "on"],
    &["henceforth"],
    &["every"],
    &["each"],
];
/// Words that correct what the agent did.
const CORRECTING: &[&[&str]] = &[
    &["next", "time"],
    &["should", "have"],
    &["shouldn", "t", "have"],
    &["should", "not", "have"],
    &["should", "ve"],
    &["you", "keep"],
    &["you", "forgot"],
    &["you", "missed"],
    &["that", "was", "wrong"],
    &["that", "s", "wrong"],
    &["that", "is", "wrong"],
    &["stop"],
];
/// Openers of confirmations, thanks and answers.
const ANSWERS: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "yup",
    "ok",
    "okay",
    "sure",
    "great",
    "thanks",
    "thank",
    "perfect",
    "alright",
    "fine",
    "cool",
    "correct",
    "right",
    "exactly",
    "sounds",
    "got",
    "understood",
    "awesome",
    "excellent",
    "hi",
    "hello",
    "hey",
    "good",
    "wonderful",
    "nice",
];
/// Openers of a statement about the speaker.
const SPEAKER: &[&str] = &[
    "i", "im", "i'm", "i'd", "id", "i've", "ive", "i'll", "my", "me", "mine", "myself",
];
/// Openers of a question.
const QUESTION: &[&str] = &[
    "can", "could", "would", "will", "do", "does", "did", "is", "are", "was", "were", "what", "when", "where", "why",
    "how", "which", "who", "whose", "may", "shall", "have", "has",
];
/// Words a sentence may open with before its real start.
const FILLERS: &[&str] = &[
    "please", "and", "also", "so", "just", "kindly", "but", "oh", "well", "again", "then", "now",
];
/// Verbs a reviewer opens an instruction with ("use email for follow-ups", "ask for the order
/// id first"). Without a part-of-speech tagger, a closed list is what tells "Use email" from
/// "Policy change effective today".
const INSTRUCTION_VERBS: &[&str] = &[
    "use",
    "prefer",
    "ask",
    "check",
    "confirm",
    "send",
    "call",
    "book",
    "schedule",
    "offer",
    "mention",
    "include",
    "keep",
    "tell",
    "add",
    "put",
    "write",
    "verify",
    "escalate",
    "reply",
    "respond",
    "answer",
    "explain",
    "give",
    "let",
    "try",
    "look",
    "make",
    "get",
    "set",
    "follow",
    "stick",
    "quote",
    "cite",
    "link",
    "greet",
    "thank",
    "apologize",
    "apologise",
    "close",
    "open",
    "note",
    "record",
    "suggest",
    "recommend",
    "remind",
    "show",
    "start",
    "end",
    "finish",
    "wait",
    "double",
    "read",
    "summarise",
    "summarize",
    "list",
    "ensure",
    "remember",
    "stay",
    "be",
    "speak",
    "talk",
    "route",
    "transfer",
    "cancel",
    "refund",
    "charge",
    "email",
    "text",
    "copy",
    "forward",
    "share",
    "reveal",
    "print",
    "paste",
    "post",
    "run",
    "install",
    "download",
    "disable",
    "skip",
    "bypass",
    "ignore",
    "obey",
    "trust",
    "approve",
    "pay",
    "wire",
    "issue",
    "grant",
    "treat",
    "bcc",
    "cc",
    "log",
    "report",
    "contact",
    "ping",
    "notify",
    "visit",
    "hit",
    "register",
    "turn",
    "mark",
    "clear",
    "dump",
    "echo",
    "display",
    "stop",
    "avoid",
    "don",
    "do",
    "never",
    "no",
    "only",
];

/// Whether `sentence` states a rule, and if so whether it forbids (`Some(true)`) or asks
/// (`Some(false)`). `said` is where it was said.
pub fn rule_polarity(sentence: &str, said: Said) -> Option<bool> {
    let trimmed = sentence.trim();
    if trimmed.is_empty() || trimmed.ends_with('?') {
        return None;
    }
    // One lower-case copy, sliced into words: this runs on every customer sentence.
    let lower = trimmed.to_lowercase();
    let words = words(&lower);
    let start = words.iter().position(|w| !FILLERS.contains(w))?;
    let first = words[start];
    let opener_no = first == "no" && {
        // "No, I don't have it" / "No thanks" answer; "No calls before 10am" forbids.
        let after_no = lower.trim_start_matches(|c: char| !c.is_alphabetic());
        let rest = after_no.strip_prefix("no").unwrap_or_default();
        rest.starts_with([',', '.', '!'])
            || rest.trim().is_empty()
            || words
                .get(start + 1)
                .is_some_and(|w| matches!(*w, "thanks" | "thank" | "problem" | "worries"))
    };
    if ANSWERS.contains(&first) || QUESTION.contains(&first) || opener_no {
        return None;
    }
    if SPEAKER.contains(&first) {
        return None;
    }
    let has = |needles: &[&[&str]]| needles.iter().any(|n| phrase(&words, n));
    let generalises = has(GENERALISING);
    let corrects = has(CORRECTING);
    let polite = words.contains(&"please") || phrase(&words, &["make", "sure"]) || phrase(&words, &["be", "sure"]);
    let imperative = said == Said::Feedback && (INSTRUCTION_VERBS.contains(&first) || polite);
    let team_voice = first == "we" && (generalises || words.contains(&"prefer"));
    if !(generalises || corrects || imperative || team_voice) {
        return None;
    }
    Some(is_negative(&words, start))
}

fn is_negative(words: &[&str], start: usize) -> bool {
    let has = |w: &str| words.contains(&w);
    has("never")
        || has("avoid")
        || has("stop")
        || phrase(words, &["don", "t"])
        || phrase(words, &["do", "not"])
        || phrase(words, &["no", "more"])
        || words.get(start).is_some_and(|w| *w == "no")
}

/// The words of a lower-cased text; an apostrophe splits ("don't" is `don t`), so typographic
/// and ASCII apostrophes read the same.
fn words(lower: &str) -> Vec<&str> {
    lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

fn phrase(words: &[&str], needle: &[&str]) -> bool {
    words
        .windows(needle.len())
        .any(|w| w.iter().zip(needle).all(|(a, b)| a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_rules_are_rules_wherever_they_are_said() {
        for (text, negative) in [
            ("Please never schedule calls before 10am.", true),
            ("Always confirm the cancellation date in writing.", false),
            ("From now on, send invoices as PDF", false),
            ("Every time a refund is issued, note the ticket id", false),
            ("In future, don't offer the premium plan to trial users", true),
            ("Stop suggesting the premium plan", true),
            ("Next time, ask for the order id first", false),
            ("You should have checked the order status first", false),
            ("We always book rooms with a window", false),
        ] {
            assert_eq!(rule_polarity(text, Said::Message), Some(negative), "{text}");
            assert_eq!(rule_polarity(text, Said::Feedback), Some(negative), "{text}");
        }
    }

    #[test]
    fn requests_confirmations_answers_and_statements_are_not() {
        for text in [
            "Yes, please proceed with the cancellation.",
            "Yes please!",
            "I'd like to cancel a reservation, please.",
            "I don't have my reservation ID with me",
            "Can you help me, please?",
            "please transfer me to a human agent",
            "No, that's all.",
            "Thanks, that is everything.",
            "My zip code is 12345",
            "I always fly direct",
            "Could you always double check? ",
            "",
        ] {
            assert_eq!(rule_polarity(text, Said::Message), None, "{text}");
        }
        for text in [
            "Yes, please proceed.",
            "I don't have it",
            "Thank you so much",
            "The agent was slow",
        ] {
            assert_eq!(rule_polarity(text, Said::Feedback), None, "{text}");
        }
    }

    #[test]
    fn imperatives_are_rules_in_feedback_only() {
        assert_eq!(
            rule_polarity("Use email over phone for follow-ups.", Said::Feedback),
            Some(false)
        );
        assert_eq!(
            rule_polarity("no calls before 10am please!", Said::Feedback),
            Some(true)
        );
        assert_eq!(
            rule_polarity("Don't schedule anything on friday afternoon", Said::Feedback),
            Some(true)
        );
        assert_eq!(
            rule_polarity("Use email over phone for follow-ups.", Said::Message),
            None
        );
        assert_eq!(rule_polarity("Don't cancel it yet", Said::Message), None);
    }

    #[test]
    fn the_trust_boundary() {
        let default = RuleSources::default();
        assert!(default.trusts_feedback("reviewer", false));
        assert!(default.trusts_feedback("operator", false));
        assert!(!default.trusts_feedback("user", false));
        assert!(!default.trusts_user_messages(false));
        let team = RuleSources {
            team_sessions: vec![("team".into(), Some("support".into()))],
            ..RuleSources::default()
        };
        assert!(team.is_team_session(|k| (k == "team").then_some("support")));
        assert!(!team.is_team_session(|k| (k == "team").then_some("sales")));
        assert!(!default.is_team_session(|_| Some("x")));
        assert!(team.trusts_user_messages(true));
        let open = RuleSources {
            customers: true,
            ..RuleSources::default()
        };
        assert!(open.trusts_feedback("user", false) && open.trusts_user_messages(false));
    }
}
