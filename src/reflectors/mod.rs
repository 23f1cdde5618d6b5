//! The model reflectors: the Anthropic Messages API ([`anthropic`]) and any OpenAI-compatible
//! chat-completions endpoint ([`openai`]), over one HTTP client with timeouts and retries
//! ([`http`]). They implement the core's [`Reflector`] trait; what they return is verified by the
//! core like any reflector's.

pub mod anthropic;
mod http;
pub mod openai;

use std::time::Duration;

pub use anthropic::AnthropicReflector;
pub use http::RetryPolicy;
pub use openai::OpenAiReflector;

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::Value;

use crate::dream::model::Reflection;
#[cfg(doc)]
use crate::dream::reflector::Reflector;
use crate::dream::reflector::{Prompt, ReflectError};

/// An API key. Its `Debug` hides it, it has no `Display`, and it becomes a header value marked
/// sensitive: the key reaches the endpoint and nothing else — no log, no error, no status.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key, surrounding whitespace removed (a Secret made from a file often ends in a
    /// newline); `None` when nothing is left, so that an empty environment variable counts as no
    /// key rather than as a key the endpoint will reject.
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let key = key.into();
        let key = key.trim();
        (!key.is_empty()).then(|| ApiKey(key.to_string()))
    }

    /// The key as a header value (`prefix` before it, e.g. `Bearer `).
    fn header_value(&self, prefix: &str, endpoint: &str) -> Result<HeaderValue, ReflectError> {
        let mut value =
            HeaderValue::from_str(&format!("{prefix}{}", self.0)).map_err(|_| ReflectError::InvalidApiKey {
                endpoint: endpoint.to_string(),
            })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How a model reflector reaches its endpoint: the DreamSchedule's `reflector` settings, or the
/// CLI's flags, with the API key read by the caller.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Base URL (`https://api.anthropic.com`, `http://vllm:8000`); `None` for the provider's
    /// public API.
    pub endpoint: Option<String>,
    /// Required by the public APIs; self-hosted OpenAI-compatible endpoints may need none.
    pub api_key: Option<ApiKey>,
    pub model: String,
    /// Upper bound on the tokens the model may answer with.
    pub max_output_tokens: u32,
    /// Upper bound on the tokens sent: the weakest candidates are withheld beyond it.
    pub max_input_tokens: Option<u32>,
    /// Bound on each attempt, from connecting to the last byte of the answer.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ModelConfig {
    /// Default bound on the answer: room for a summary and a few dozen lessons of 500
    /// characters.
    pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;
    /// Default bound on each attempt: a large prompt and a long structured answer can take a
    /// minute on a busy endpoint.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// Settings for `model` with the defaults: the provider's public endpoint, no key, 4096
    /// output tokens, no input bound, 120 s per attempt, the default retries.
    pub fn new(model: impl Into<String>) -> ModelConfig {
        ModelConfig {
            endpoint: None,
            api_key: None,
            model: model.into(),
            max_output_tokens: Self::DEFAULT_MAX_OUTPUT_TOKENS,
            max_input_tokens: None,
            timeout: Self::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

/// What a model reflector returns when the prompt leaves nothing to ask (no eligible candidate,
/// or no section a lesson could go to): no call, no tokens spent.
fn nothing_to_ask(prompt: &Prompt) -> Reflection {
    let summary = if prompt.sections.is_empty() {
        "Every section is protected, so there is nowhere to add a lesson; the model was not called."
    } else {
        "No candidate pattern met the evidence threshold; the model was not called."
    };
    Reflection {
        summary: summary.to_string(),
        ..Reflection::default()
    }
}

/// The body of a model's answer as JSON.
fn parse_json(endpoint: &str, body: &Bytes) -> Result<Value, ReflectError> {
    serde_json::from_slice(body).map_err(|e| ReflectError::MalformedJson {
        endpoint: endpoint.to_string(),
        cause: e.to_string(),
        excerpt: http::excerpt(body, 80),
    })
}

/// A token count from a usage object (absent or not a number: 0).
fn usage(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// Warns once per reflector when a key would travel unencrypted to another machine. Allowed,
/// because an in-cluster model served over plain HTTP is common, but worth a line in the log.
fn warn_if_plain(url: &hyper::Uri, has_key: bool) {
    if has_key && http::is_plain_remote(url) {
        tracing::warn!(endpoint = %url, "the reflector sends its API key over plain HTTP to another host; prefer https");
    }
}
