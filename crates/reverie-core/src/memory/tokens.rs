//! Token estimates: how much of a model's context a memory takes.
//!
//! The estimate mirrors how `cl100k_base`-style tokenizers split text before byte-pair
//! encoding (runs of letters with one leading space or punctuation mark, digits in groups of
//! three, punctuation runs, newline runs), then prices each piece: a word is one token up to a
//! length, longer words cost more; a lone punctuation mark before a word often merges into it.
//! It is one pass over the bytes with a few integers of state and no allocation, because the
//! dream engine calls it on every candidate while compacting to a budget. The weights are
//! calibrated against `cl100k_base` on generated memory text (see the tests and
//! `docs/benchmarks.md`); other tokenizers of the same family land within a similar margin.

use super::document::MemoryDocument;
use super::render::render_markdown;

/// The estimated number of tokens of `text`.
pub fn estimate_tokens(text: &str) -> usize {
    estimate_with(text, &CALIBRATED)
}

/// The estimated number of tokens of the `MEMORY.md` that `agent` loads (exactly
/// `estimate_tokens(&render_markdown(agent, doc))`): what `spec.memory.maxTokens` budgets.
///
/// It takes the agent's name so that it counts the very file the agent reads; the name is a few
/// tokens of the header, and every caller that stores or budgets a memory knows it.
pub fn loaded_tokens(agent: &str, doc: &MemoryDocument) -> usize {
    estimate_tokens(&render_markdown(agent, doc))
}

/// What each piece of text costs, in thousandths of a token.
#[derive(Clone, Copy, Debug)]
struct Weights {
    /// Letters a word may have and still be one token.
    free_letters: u32,
    /// Cost of each letter beyond `free_letters`.
    extra_letter: u32,
    /// Cost of a lone punctuation mark glued to the word after it (`_id`, `(seen`, `.md`).
    glued_mark: u32,
    /// Cost of each non-ASCII character (accents, CJK, emoji), on top of its word.
    non_ascii: u32,
}

/// Calibrated against `cl100k_base`; see `estimate_stays_close_to_cl100k`.
const CALIBRATED: Weights = Weights {
    free_letters: 8,
    extra_letter: 200,
    glued_mark: 750,
    non_ascii: 1000,
};

const MILLI: u32 = 1000;

/// How the tokenizer's pre-split sees a byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    /// The first byte of a multi-byte character: a letter for splitting, with its own cost.
    NonAscii,
    /// A continuation byte of a multi-byte character: already counted.
    Continuation,
    Digit,
    Space,
    Newline,
    Mark,
}

const fn class_of(byte: u8) -> Class {
    match byte {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b' ' | b'\t' => Class::Space,
        b'\n' | b'\r' => Class::Newline,
        0x80..=0xBF => Class::Continuation,
        0xC0..=0xFF => Class::NonAscii,
        _ => Class::Mark,
    }
}

const CLASSES: [Class; 256] = {
    let mut table = [Class::Mark; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = class_of(byte as u8);
        byte += 1;
    }
    table
};

fn is_word(class: Class) -> bool {
    matches!(class, Class::Letter | Class::NonAscii | Class::Continuation)
}

#[inline]
fn estimate_with(text: &str, weights: &Weights) -> usize {
    let mut scan = Scanner {
        bytes: text.as_bytes(),
        at: 0,
        weights,
        glued: false,
        spaced: false,
    };
    let mut milli = 0u64;
    while let Some(class) = scan.class() {
        let cost = match class {
            Class::Letter | Class::NonAscii | Class::Continuation => scan.word(),
            Class::Digit => scan.skip(|c| c == Class::Digit).len().div_ceil(3) as u32 * MILLI,
            Class::Space => scan.spaces(),
            Class::Newline => {
                scan.skip(|c| c == Class::Newline);
                MILLI
            }
            Class::Mark => scan.marks(),
        };
        milli += u64::from(cost);
    }
    milli.div_ceil(u64::from(MILLI)) as usize
}

/// Reads text piece by piece, as the tokenizer's pre-split does, and prices each piece in
/// thousandths of a token. What one piece lends the next is carried in two flags, each consumed
/// by the piece right after it.
struct Scanner<'t> {
    bytes: &'t [u8],
    at: usize,
    weights: &'t Weights,
    /// A lone mark right before this word (`_id`, `(seen`) is priced with it.
    glued: bool,
    /// One space right before these marks (` (`, ` **`) is part of them.
    spaced: bool,
}

impl Scanner<'_> {
    #[inline]
    fn class(&self) -> Option<Class> {
        self.bytes.get(self.at).map(|&byte| CLASSES[byte as usize])
    }

    /// Moves past every byte `in_run` accepts, returning them.
    #[inline]
    fn skip(&mut self, in_run: impl Fn(Class) -> bool) -> &[u8] {
        let rest = &self.bytes[self.at..];
        let len = rest
            .iter()
            .position(|&b| !in_run(CLASSES[b as usize]))
            .unwrap_or(rest.len());
        self.at += len;
        &rest[..len]
    }

    #[inline]
    fn word(&mut self) -> u32 {
        let run = self.skip(is_word);
        let (letters, non_ascii) = if run.is_ascii() {
            (run.len() as u32, 0)
        } else {
            let lead = run.iter().filter(|&&b| CLASSES[b as usize] == Class::NonAscii).count() as u32;
            let continuation = run
                .iter()
                .filter(|&&b| CLASSES[b as usize] == Class::Continuation)
                .count() as u32;
            (run.len() as u32 - continuation, lead)
        };
        let weights = self.weights;
        let glued = std::mem::take(&mut self.glued);
        let extra = letters.saturating_sub(weights.free_letters) * weights.extra_letter;
        MILLI + extra + non_ascii * weights.non_ascii + if glued { weights.glued_mark } else { 0 }
    }

    /// The last of a run of spaces joins the word or marks after it, and all of them join a
    /// newline after them; otherwise the spaces are a piece of their own.
    #[inline]
    fn spaces(&mut self) -> u32 {
        let spaces = self.skip(|c| c == Class::Space).len();
        let lent = match self.class() {
            Some(Class::Newline) => return 0,
            Some(Class::Mark) => {
                self.spaced = true;
                true
            }
            Some(next) => is_word(next),
            None => false,
        };
        if lent && spaces == 1 { 0 } else { MILLI }
    }

    /// A run of marks (`**`, `->`, `").`) is usually one token, with the newlines right after
    /// it (`.\n\n`); a lone mark before a word is priced with the word instead.
    #[inline]
    fn marks(&mut self) -> u32 {
        let marks = self.skip(|c| c == Class::Mark).len();
        let spaced = std::mem::take(&mut self.spaced);
        if marks == 1 && !spaced && self.class().is_some_and(is_word) {
            self.glued = true;
            return 0;
        }
        self.skip(|c| c == Class::Newline);
        MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::document::{Entry, EntryKind, Evidence};
    use crate::rng::Rng;

    /// An index in `0..n` drawn by modulo: the calibration corpus is the one the weights were
    /// fitted on, byte for byte, so it keeps the draw it was generated with.
    fn below(rng: &mut Rng, n: usize) -> usize {
        (rng.next_u64() % n as u64) as usize
    }

    fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
        items[below(rng, items.len())]
    }

    fn hex(rng: &mut Rng, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[below(rng, 16)]))
            .collect()
    }

    /// Sentence templates per kind of agent. `{w}` is a topic word, `{n}` a number, `{id}` an
    /// entry or session id, `{c}` a code-ish token, `{t}` a tool name, `{p}` a path.
    const STYLES: [&[&str]; 6] = [
        // Customer support.
        &[
            "When {t} fails with \"account {n} not found\", look the customer up by billing id instead of the email address.",
            "Customers on the enterprise tier expect a reply within {n} hours; escalate to the account manager if the {w} is still open.",
            "Never offer a refund above ${n} without approval from a team lead; cite the policy in ticket {id}.",
            "Please don't schedule calls before 10am in the customer's time zone, they asked for this in {n} sessions.",
            "If the customer mentions a {w}, check the invoice history first and quote the exact amount (e.g. $1,{n}.00).",
            "Always confirm the cancellation in writing and keep the discount when the plan is reversed.",
            "Use {t} with the subscription id (format SUB-{n}) rather than the customer's name.",
        ],
        // Platform operations.
        &[
            "Run `kubectl rollout status deploy/{c} -n {w}` before announcing a release; it took {n}s last time.",
            "The staging cluster lives at https://staging.internal:6443 and uses {n} replicas of {c} v0.{n}.2.",
            "Certificates expire every 90 days; rotate them with `make rotate-certs ENV={w}` a week ahead.",
            "Logs for the ingress controller are in {p}; grep for \"upstream timed out\" before restarting pods.",
            "When a node reports DiskPressure, drain it with `kubectl drain {c} --ignore-daemonsets --delete-emptydir-data`.",
            "Prefer server-side apply with field manager `{c}` so {w} changes never fight over ownership.",
            "Set `resources.limits.memory: {n}Mi` on the {w} job, or it is OOM-killed during the nightly backup.",
        ],
        // Coding assistant.
        &[
            "In `{p}:{n}` the function `{c}()` returns `Result<Vec<Entry>, ApplyError>`; propagate errors with `?` instead of unwrap.",
            "Tests for the {w} module run with `cargo test -p {c} -- --nocapture`; they need no network.",
            "The maintainers prefer small pull requests (under {n} lines) with one commit per logical change.",
            "Format with `cargo fmt` and check `cargo clippy --all-targets -- -D warnings` before pushing.",
            "`{c}` is deprecated since v{n}.3; use `{c}_v2` with the same arguments and a timeout of {n}ms.",
            "When a test is flaky, look for shared state in {p} rather than adding retries.",
            "Type hints are required in Python code: `def {c}(items: list[str], limit: int = {n}) -> dict[str, int]:`.",
        ],
        // Data analysis.
        &[
            "Revenue numbers come from `analytics.{c}`; filter on `status = 'paid'` and `created_at >= '2026-0{n}-01'`.",
            "The {w} dashboard double-counts refunds; subtract the refund column ({n}.{n}% of revenue last quarter).",
            "Round percentages to one decimal and report absolute numbers next to them (e.g. 12.4% = {n} users).",
            "SELECT {c}, count(*) FROM events WHERE day > now() - interval '{n} days' GROUP BY 1 is the usual starting query.",
            "The finance team wants weekly reports on Monday before 9:00 CET, as a CSV attached to ticket {id}.",
            "Churn is defined as no login for {n} days; do not use the billing {w} for it.",
        ],
        // Prose: general lessons.
        &[
            "When the user is frustrated, acknowledge the problem in one sentence before suggesting anything, and avoid repeating questions they already answered.",
            "Summaries work best when they start with the decision that was made, then list the open questions, and end with who owns each next step.",
            "If two sources disagree about the {w}, say so explicitly and name both sources instead of silently picking one.",
            "Long answers were rated lower than short ones in {n} of the reviewed sessions; keep replies under five sentences unless asked for detail.",
            "The team values honesty about uncertainty: say \"I'm not sure\" and explain how to check, rather than guessing.",
            "Meetings about the {w} usually end without a decision; propose two concrete options in writing beforehand.",
        ],
        // International.
        &[
            "Customers in München and Zürich prefer formal German (\"Sie\"), and prices in € with a comma: 1.234,{n} €.",
            "The Tokyo office (東京) answers between 09:00 and 18:00 JST; route {w} tickets there after 17:00 CET.",
            "Names like José, Zoë and Łukasz must keep their accents in every email; the CRM used to strip them.",
            "For the São Paulo team, reply in Portuguese when the ticket starts in Portuguese (\"Olá\").",
        ],
    ];

    const WORDS: [&str; 16] = [
        "invoice",
        "migration",
        "outage",
        "refund",
        "deployment",
        "onboarding",
        "renewal",
        "backup",
        "dashboard",
        "checkout",
        "billing",
        "contract",
        "latency",
        "pipeline",
        "quota",
        "escalation",
    ];
    const CODE: [&str; 10] = [
        "lookup_account",
        "reverie-operator",
        "apply_changes",
        "node-7f2c",
        "parse_config",
        "sync_users",
        "ingress-nginx",
        "memory_store",
        "fetch_invoices",
        "worker-pool",
    ];
    const TOOLS: [&str; 6] = [
        "lookup_account",
        "get_subscription",
        "create_ticket",
        "refund_payment",
        "send_email",
        "search_kb",
    ];
    const PATHS: [&str; 6] = [
        "src/memory/change.rs",
        "/var/log/ingress/access.log",
        "charts/reverie/values.yaml",
        "app/models/user.py",
        "/etc/reverie/config.toml",
        "docs/runbooks/rotate.md",
    ];

    fn sentence(rng: &mut Rng, style: &[&str]) -> String {
        let mut text = pick(rng, style).to_string();
        while let Some(start) = text.find('{') {
            let end = start + text[start..].find('}').unwrap();
            let fill = match &text[start + 1..end] {
                "w" => pick(rng, &WORDS).to_string(),
                "n" => (below(rng, 9000) + 2).to_string(),
                "id" => format!("s-{}", hex(rng, 4)),
                "c" => pick(rng, &CODE).to_string(),
                "t" => pick(rng, &TOOLS).to_string(),
                _ => pick(rng, &PATHS).to_string(),
            };
            text.replace_range(start..=end, &fill);
        }
        text
    }

    /// A realistic memory: a few sections of entries drawn mostly from one style, with some
    /// multi-sentence and multi-line entries, rendered as `MEMORY.md`.
    fn memory_markdown(rng: &mut Rng, style: usize, entries: usize) -> String {
        let now: jiff::Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let mut doc = MemoryDocument::with_instructions(&sentence(rng, STYLES[4]), &[], now);
        let kinds = [
            EntryKind::Lesson,
            EntryKind::Preference,
            EntryKind::Workflow,
            EntryKind::Fact,
        ];
        for _ in 0..entries {
            let from = if below(rng, 5) == 0 {
                below(rng, STYLES.len())
            } else {
                style
            };
            let mut text = sentence(rng, STYLES[from]);
            for _ in 0..below(rng, 3) {
                text.push_str(if below(rng, 4) == 0 { "\n" } else { " " });
                text.push_str(&sentence(rng, STYLES[from]));
            }
            let kind = kinds[below(rng, kinds.len())];
            doc.section_mut(kind.default_section()).entries.push(Entry {
                id: format!("{:?}-{}", kind, hex(rng, 6)).to_lowercase(),
                text,
                kind,
                evidence: Evidence {
                    count: below(rng, 12) as u32,
                    ..Evidence::default()
                },
                provenance: None,
                created: now,
                reinforced: None,
                pinned: false,
            });
        }
        doc.normalize();
        render_markdown("support-bot", &doc)
    }

    /// A corpus of memories of every style and of several sizes (1k to ~10k tokens).
    fn corpus() -> Vec<String> {
        let mut rng = Rng::new(0x5EED);
        let mut docs = Vec::new();
        for style in 0..STYLES.len() {
            for entries in [25, 60, 150] {
                docs.push(memory_markdown(&mut rng, style, entries));
            }
        }
        docs
    }

    fn cl100k(text: &str) -> usize {
        tiktoken_rs::cl100k_base_singleton()
            .encode_with_special_tokens(text)
            .len()
    }

    /// Relative error of the estimate against `cl100k_base`.
    fn relative_error(text: &str) -> f64 {
        let actual = cl100k(text) as f64;
        (estimate_tokens(text) as f64 - actual) / actual
    }

    /// The calibration: on memories of every style from 1.5k to 9k tokens, the estimate stays
    /// within ±5% of `cl100k_base` (measured: at most 1.6%), where `len / 4` is off by up to 24%.
    #[test]
    fn estimate_stays_close_to_cl100k() {
        let docs = corpus();
        let errors: Vec<f64> = docs.iter().map(|doc| relative_error(doc)).collect();
        let worst = errors.iter().copied().map(f64::abs).fold(0.0, f64::max);
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        println!(
            "token estimate vs cl100k_base over {} memories: worst {worst:.4}, mean {mean:+.4}",
            docs.len()
        );
        assert!(
            docs.iter().all(|doc| cl100k(doc) >= 1000),
            "the corpus is made of memories of at least 1k tokens"
        );
        assert!(worst <= 0.05, "worst relative error {worst:.4} exceeds 5%: {errors:?}");
        assert!(mean.abs() <= 0.02, "the estimate is biased: mean error {mean:+.4}");
    }

    /// Memories of every style generated with another seed: text the weights were not fitted
    /// on.
    #[test]
    fn estimate_holds_on_text_it_was_not_fitted_on() {
        let mut rng = Rng::new(0xD1CE);
        for style in 0..STYLES.len() {
            let doc = memory_markdown(&mut rng, style, 40);
            let error = relative_error(&doc);
            println!("held-out memory of style {style}: error {error:+.4}");
            assert!(error.abs() <= 0.05, "relative error {error:.4} on a held-out memory");
        }
    }

    #[test]
    fn small_texts_are_priced_like_the_tokenizer_splits_them() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("hello"), 1);
        assert_eq!(estimate_tokens("hello world"), 2);
        // Digits go in groups of three; a space before digits is a token of its own.
        assert_eq!(estimate_tokens("1234567"), 3);
        assert_eq!(estimate_tokens("id 42"), 3);
        // Blank lines are one piece; a lone mark before a word is part-priced.
        assert_eq!(estimate_tokens("a\n\n\nb"), 3);
        assert_eq!(estimate_tokens("lookup_account"), 3);
        // One space joins the next word or marks; extra spaces are a piece; marks take the
        // newlines after them.
        assert_eq!(estimate_tokens("a  b"), 3);
        assert_eq!(estimate_tokens("see (it)"), 4);
        assert_eq!(estimate_tokens("done.\n\nNext"), 3);
        // Each non-ASCII character costs a token.
        assert_eq!(estimate_tokens("東京"), 3);
    }

    #[test]
    fn loaded_tokens_price_the_rendered_memory() {
        let mut rng = Rng::new(7);
        let now: jiff::Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let doc = MemoryDocument::with_instructions(&sentence(&mut rng, STYLES[0]), &[], now);
        let markdown = render_markdown("support-bot", &doc);
        assert_eq!(loaded_tokens("support-bot", &doc), estimate_tokens(&markdown));
        assert!(loaded_tokens("support-bot", &doc) > estimate_tokens(&doc.sections[0].entries[0].text));
    }
}
