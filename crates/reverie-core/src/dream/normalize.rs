//! Text normalisation for counting: the same mistake or rule, written with different ids,
//! numbers, quoting, case or wording, must land under one key.

use std::collections::BTreeSet;

/// Error text with the volatile parts replaced by placeholders: emails `<email>`, UUIDs
/// `<uuid>`, long hex `<hex>`, numbers `<n>`, quoted values `<q>`; lower-cased, punctuation
/// folded to spaces, whitespace collapsed. One pass, one output allocation.
pub fn normalize_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b'"' | b'\'' | b'`')
            && let Some(end) = bytes[i + 1..].iter().position(|&b| b == c)
            && end <= 200
        {
            push_token(&mut out, "<q>");
            i += end + 2;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' || c == b'@' || c == b'+' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.' | b'@' | b'+'))
            {
                i += 1;
            }
            let word = text[start..i].trim_matches(|ch: char| ch == '.' || ch == '-' || ch == '+');
            classify_word(&mut out, word);
            continue;
        }
        if c >= 0x80 {
            // Non-ASCII: keep letters as they are (lower-cased), as part of a word.
            let ch = text[i..].chars().next().unwrap_or(' ');
            if ch.is_alphanumeric() {
                if !out.is_empty() && !out.ends_with(' ') && !out.ends_with(|p: char| p.is_alphanumeric()) {
                    out.push(' ');
                }
                out.extend(ch.to_lowercase());
            } else {
                push_space(&mut out);
            }
            i += ch.len_utf8();
            continue;
        }
        push_space(&mut out);
        i += 1;
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

fn push_space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

fn push_token(out: &mut String, token: &str) {
    push_space(out);
    out.push_str(token);
    out.push(' ');
}

fn is_uuid(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn classify_word(out: &mut String, word: &str) {
    if word.is_empty() {
        return;
    }
    if word.contains('@') && word.contains('.') && !word.starts_with('@') {
        push_token(out, "<email>");
    } else if is_uuid(word) {
        push_token(out, "<uuid>");
    } else if word.len() >= 6
        && word.bytes().all(|b| b.is_ascii_hexdigit())
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
    {
        push_token(out, "<hex>");
    } else if word.bytes().filter(u8::is_ascii_digit).count() * 2 >= word.len() {
        // Mostly digits: ids like 88231 or INV-2024-0042, amounts, durations like 30s.
        push_token(out, "<n>");
    } else {
        push_space(out);
        for ch in word.chars() {
            if ch == '.' || ch == '-' || ch == '+' || ch == '@' {
                out.push(' ');
            } else {
                out.push(ch.to_ascii_lowercase());
            }
        }
        out.push(' ');
    }
}

/// An error as a person reads it, with what varies between occurrences masked: e-mail
/// addresses `<email>`, tokens with digits in them — ids, codes, amounts, dates, times — `<id>`
/// (or `<n>` when they are only a number). Case, wording and punctuation stay, so the lesson
/// quotes the error a reader will meet ("not enough seats on flight <id>"), not one occurrence.
pub fn mask_volatile(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        let core = token.trim_end_matches(['.', ',', ':', ';']);
        let tail = &token[core.len()..];
        let digits = core.bytes().filter(u8::is_ascii_digit).count();
        if core.contains("://") || core.starts_with("www.") {
            out.push_str("<url>");
        } else if core.contains('@') && core.contains('.') {
            out.push_str("<email>");
        } else if digits > 0 {
            let numeric = core
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'$' | b'%' | b'-' | b'+' | b'#'));
            out.push_str(if numeric { "<n>" } else { "<id>" });
        } else {
            out.push_str(core);
        }
        out.push_str(tail);
        token.clear();
    };
    for ch in text.chars() {
        if ch.is_whitespace() || matches!(ch, '"' | '\'' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>') {
            flush(&mut token, &mut out);
            out.push(ch);
        } else {
            token.push(ch);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Words that carry no content for grouping rules ("please never book anything on friday
/// afternoons" and "no bookings on Friday afternoons" share `book friday afternoon`).
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "all",
    "also",
    "always",
    "am",
    "an",
    "and",
    "any",
    "anything",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "dont",
    "don't",
    "doing",
    "for",
    "from",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "it's",
    "just",
    "kindly",
    "let",
    "lets",
    "me",
    "more",
    "my",
    "never",
    "no",
    "not",
    "now",
    "of",
    "on",
    "once",
    "one",
    "only",
    "or",
    "our",
    "ourselves",
    "please",
    "pls",
    "prefer",
    "rather",
    "should",
    "so",
    "some",
    "something",
    "still",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "too",
    "us",
    "very",
    "want",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "ever",
    "again",
    "make",
    "sure",
    "thanks",
    "thank",
    "okay",
    "ok",
];

/// A crude English stemmer: enough to make "bookings", "booking", "booked" and "book" one word.
pub fn stem(word: &str) -> &str {
    for suffix in ["ings", "ing", "ies", "ed", "es", "s", "ly"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.len() >= 3
        {
            return stem;
        }
    }
    word
}

/// The content words of a phrase, stemmed, for similarity.
pub fn content_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !STOP_WORDS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit()))
        .map(|w| stem(&w).to_string())
        .collect()
}

/// Jaccard similarity of two word sets (1.0 for two empty sets).
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let shared = a.intersection(b).count();
    shared as f64 / (a.len() + b.len() - shared) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn masking_keeps_the_words_and_hides_what_varies() {
        assert_eq!(
            super::mask_volatile("Error: not enough seats on flight HAT229"),
            "Error: not enough seats on flight <id>"
        );
        assert_eq!(
            super::mask_volatile("Payment amount does not add up, total price is 375, but paid 299."),
            "Payment amount does not add up, total price is <n>, but paid <n>."
        );
        assert_eq!(
            super::mask_volatile("user a.b@example.com not found since 2024-05-01 (order #W2378156)"),
            "user <email> not found since <n> (order <id>)"
        );
        assert_eq!(super::mask_volatile("Error: User not found"), "Error: User not found");
    }

    use super::*;

    #[test]
    fn volatile_parts_are_replaced() {
        assert_eq!(
            normalize_error("account 88231 not found: use the billing id, not the email"),
            normalize_error("Account 10442 not found: use the billing id, not the email!")
        );
        assert_eq!(normalize_error("account 88231 not found"), "account <n> not found");
        assert_eq!(normalize_error("user ana@example.com locked"), "user <email> locked");
        assert_eq!(
            normalize_error("request 3f2a9c1d-1111-2222-3333-444455556666 failed"),
            "request <uuid> failed"
        );
        assert_eq!(normalize_error("commit deadbeef42 missing"), "commit <hex> missing");
        assert_eq!(
            normalize_error("invalid value 'Friday' for \"day\""),
            "invalid value <q> for <q>"
        );
        assert_eq!(normalize_error("  Timeout   after 30s  "), "timeout after <n>");
    }

    #[test]
    fn words_are_kept_when_not_volatile() {
        assert_eq!(normalize_error("Refund window expired"), "refund window expired");
        assert_eq!(normalize_error("rate-limited by upstream"), "rate limited by upstream");
    }

    #[test]
    fn near_duplicate_rules_share_content_words() {
        let a = content_words("no bookings on friday afternoons please!");
        let b = content_words("Please never book anything on Friday afternoons.");
        assert_eq!(a, b);
        assert!(jaccard(&a, &content_words("don't schedule anything friday afternoon")) >= 0.5);
        assert!(jaccard(&a, &content_words("always confirm the cancellation date in writing")) < 0.2);
    }
}
