//! Reflectors: what turns mined candidate patterns into lessons for the memory.
//!
//! One trait, several implementations: the builtin offline one (the default) here, and the model
//! reflectors (Anthropic Messages API, OpenAI-compatible chat completions) in the operator crate,
//! which bring the HTTP client this crate does without.
//! A reflector only ever sees the pre-mined candidates and the current memory ([`prompt`]), never
//! raw transcripts, and nothing it returns is trusted: [`verify`] keeps only lessons that rest on
//! counted evidence, target a section dreaming may change, read safely and fit the budget.

pub mod builtin;
pub mod prompt;
mod verify;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use prompt::{Prompt, full_window_tokens, prompt_tokens};
pub use verify::{DropReason, MAX_LESSON_CHARS, RiskyLesson, VerifyReport, verify};

use super::model::{Candidate, Reflection};
use crate::memory::MemoryDocument;

/// What a reflector is asked: the candidates of one pass and the memory they would change.
#[derive(Clone, Copy, Debug)]
pub struct ReflectRequest<'a> {
    /// Candidates mined from the sessions, with their evidence.
    pub candidates: &'a [Candidate],
    /// The agent's current memory (protected sections and existing entries).
    pub memory: &'a MemoryDocument,
    /// A lesson needs a cited candidate seen in at least this many distinct sessions.
    pub min_evidence: u32,
    /// Budget of the loaded memory, in estimated tokens.
    pub max_tokens: u32,
    /// Extra steering for this pass (the DreamSchedule's `reflector.instructions`).
    pub instructions: Option<&'a str>,
}

/// The future a reflector returns: boxed so that the trait stays usable as `Box<dyn Reflector>`
/// (the pass picks its reflector from configuration at run time).
pub type ReflectFuture<'a> = Pin<Box<dyn Future<Output = Result<Reflection, ReflectError>> + Send + 'a>>;

/// Turns candidates into proposed lessons.
///
/// Implementations return what they propose as is; the caller runs [`verify`] (or uses
/// [`reflect_and_verify`]) so that no reflector, however it is built, can put unverified lessons
/// into a proposal.
pub trait Reflector: Send + Sync {
    /// A short name for the proposal's stats and logs (e.g. `builtin`, `anthropic/<model>`).
    fn name(&self) -> &str;

    /// Proposes lessons for `request`.
    fn reflect<'a>(&'a self, request: &'a ReflectRequest<'a>) -> ReflectFuture<'a>;
}

/// Longest summary kept from a reflector: it is shown to reviewers, not loaded into memory, but a
/// runaway model must not fill a MemoryProposal with it.
pub const MAX_SUMMARY_CHARS: usize = 2000;

/// Runs `reflector` and verifies what it returns: the reflection keeps only the accepted lessons
/// (its summary truncated to [`MAX_SUMMARY_CHARS`]), and the report says what was dropped and why.
pub async fn reflect_and_verify(
    reflector: &dyn Reflector,
    request: &ReflectRequest<'_>,
) -> Result<(Reflection, VerifyReport), ReflectError> {
    let mut reflection = reflector.reflect(request).await?;
    let lessons = std::mem::take(&mut reflection.lessons);
    let (accepted, report) = verify(
        Reflection {
            lessons,
            ..Reflection::default()
        },
        request,
    );
    reflection.lessons = accepted;
    reflection.summary = truncate_chars(reflection.summary.trim(), MAX_SUMMARY_CHARS);
    Ok((reflection, report))
}

/// Why a model reflector failed. Each message is one sentence naming the endpoint, the cause and
/// what to do about it, because it ends up in a Job's log and a DreamSchedule's status where the
/// agent owner reads it.
#[derive(Debug, thiserror::Error)]
pub enum ReflectError {
    #[error(
        "no API key for {endpoint}: set the reflector's API key (apiKeySecretRef in-cluster, the environment variable locally)"
    )]
    MissingApiKey { endpoint: String },

    #[error(
        "the API key for {endpoint} is not a valid HTTP header value; check the Secret or variable for stray characters"
    )]
    InvalidApiKey { endpoint: String },

    #[error(
        "reflector endpoint {endpoint:?} is not a usable http(s) URL ({reason}); set reflector.endpoint to a base URL like https://api.example.com"
    )]
    InvalidEndpoint { endpoint: String, reason: String },

    #[error("{endpoint} did not answer within {}; raise the reflector timeout or check that the endpoint is reachable", humantime::format_duration(*.after))]
    Timeout { endpoint: String, after: Duration },

    #[error(
        "could not reach {endpoint} after {attempts} attempt(s): {cause}; check the endpoint URL, DNS and network policy"
    )]
    Connect {
        endpoint: String,
        attempts: u32,
        cause: String,
    },

    #[error("{endpoint} answered HTTP {status} after {attempts} attempt(s): {body}; {hint}", hint = status_hint(*.status))]
    Status {
        endpoint: String,
        status: u16,
        attempts: u32,
        /// The start of the response body, whitespace collapsed.
        body: String,
    },

    #[error(
        "{endpoint} returned malformed JSON ({cause}) starting {excerpt:?}; check that the endpoint speaks this provider's API"
    )]
    MalformedJson {
        endpoint: String,
        cause: String,
        excerpt: String,
    },

    #[error("{endpoint} returned JSON that does not match the expected shape: {cause}")]
    Schema { endpoint: String, cause: String },

    #[error("reflector {reflector} failed: {cause}")]
    Failed { reflector: String, cause: String },
}

/// What to do about an HTTP status, for [`ReflectError::Status`].
fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "check the API key and its permissions",
        404 => "check the endpoint URL and the model name",
        400 | 422 => "check the model name and max output tokens",
        408 | 429 => "the endpoint is rate limiting; lower the schedule's frequency or raise the retry limit",
        500..=599 => "the endpoint is failing; retry later",
        _ => "check the endpoint and the model configuration",
    }
}

/// The first `max` characters of `text`, with `…` when cut (never splits a character).
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => {
            let mut out = text[..cut].trim_end().to_string();
            out.push('…');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_chars("héllo wörld", 5), "héllo…");
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("東京東京", 2), "東京…");
    }

    #[test]
    fn errors_are_one_actionable_sentence() {
        let error = ReflectError::Status {
            endpoint: "https://api.anthropic.com/v1/messages".into(),
            status: 401,
            attempts: 1,
            body: "invalid x-api-key".into(),
        };
        assert_eq!(
            error.to_string(),
            "https://api.anthropic.com/v1/messages answered HTTP 401 after 1 attempt(s): invalid x-api-key; \
             check the API key and its permissions"
        );
        let timeout = ReflectError::Timeout {
            endpoint: "http://127.0.0.1:1/v1/chat/completions".into(),
            after: Duration::from_millis(250),
        };
        assert_eq!(
            timeout.to_string(),
            "http://127.0.0.1:1/v1/chat/completions did not answer within 250ms; raise the reflector timeout \
             or check that the endpoint is reachable"
        );
        for error in [error, timeout] {
            assert!(!error.to_string().contains('\n'));
        }
    }

    /// A reflector is usable behind `Box<dyn Reflector>`, which is how the pass holds it.
    #[tokio::test]
    async fn a_boxed_reflector_is_verified() {
        struct Fixed;
        impl Reflector for Fixed {
            fn name(&self) -> &str {
                "fixed"
            }
            fn reflect<'a>(&'a self, _request: &'a ReflectRequest<'a>) -> ReflectFuture<'a> {
                Box::pin(async {
                    Ok(Reflection {
                        lessons: vec![crate::dream::model::Lesson {
                            candidates: vec![],
                            section: "lessons".into(),
                            text: "Unbacked.".into(),
                        }],
                        summary: "x".repeat(MAX_SUMMARY_CHARS + 10),
                        tokens_in: 3,
                        tokens_out: 4,
                    })
                })
            }
        }
        let reflector: Box<dyn Reflector> = Box::new(Fixed);
        let memory = MemoryDocument::default();
        let request = ReflectRequest {
            candidates: &[],
            memory: &memory,
            min_evidence: 1,
            max_tokens: 1000,
            instructions: None,
        };
        let (reflection, report) = reflect_and_verify(reflector.as_ref(), &request).await.unwrap();
        assert!(reflection.lessons.is_empty());
        assert_eq!(report.no_evidence, 1);
        assert_eq!((reflection.tokens_in, reflection.tokens_out), (3, 4));
        assert_eq!(reflection.summary.chars().count(), MAX_SUMMARY_CHARS + 1);
    }
}
