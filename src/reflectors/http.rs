//! The small HTTP client the model reflectors share: one JSON POST with a timeout, retried with
//! exponential backoff and jitter on rate limits, server errors and broken connections.
//!
//! Built on hyper-util's pooled client with rustls (native roots, falling back to the bundled
//! webpki roots where a container image has no CA bundle), and plain HTTP for self-hosted
//! endpoints on the local network. It never logs headers or bodies: requests carry API keys and
//! prompts.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::dream::reflector::ReflectError;

/// Largest response body read: a structured answer is a few kilobytes, and a misbehaving
/// endpoint must not make the pass buffer without bound.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Characters of an error body kept in [`ReflectError::Status`].
const BODY_EXCERPT_CHARS: usize = 300;

/// How often and how patiently a request is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled on each further one, with jitter.
    pub base_delay: Duration,
    /// Longest delay between attempts, a server's `retry-after` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts, 1 s doubling to at most 60 s: rides out a rate-limit window without
    /// stretching a scheduled pass by more than a couple of minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based): `base · 2^(retry-1)`, capped, then
    /// jittered into its upper half so that passes that failed together do not retry together.
    fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_delay);
        let half = exponential / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in `[0, 1)`, different on every call. Randomly keyed `RandomState` hashers are the
/// standard library's only randomness; retry jitter needs no more.
fn jitter() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A JSON-over-HTTP(S) client for one endpoint URL.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: Uri,
    /// The URL as shown in errors and logs.
    label: String,
    timeout: Duration,
    retry: RetryPolicy,
}

impl HttpClient {
    /// A client posting to `url`, each attempt bounded by `timeout`.
    pub(crate) fn new(url: Uri, timeout: Duration, retry: RetryPolicy) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_native_roots() {
            Ok(builder) => builder,
            Err(error) => {
                tracing::debug!(%error, "no usable native root certificates; using the bundled webpki roots");
                hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots()
            }
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        HttpClient {
            client,
            label: url.to_string(),
            url,
            timeout,
            retry,
        }
    }

    /// The URL as shown in errors.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// POSTs `body` as JSON with `headers`, retrying as the policy allows, and returns the body
    /// of the first successful (2xx) answer.
    ///
    /// Retried: 408, 429 and 5xx answers (after the server's `retry-after-ms` / `retry-after` when
    /// given, else the backoff) and transport failures (refused or reset connections, a stale
    /// pooled connection). Not retried: a timeout — the model may still be generating, and a
    /// second identical request would be billed again while the pass waits twice as long — and
    /// any other status, which will not change on its own.
    pub(crate) async fn post_json(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Bytes, ReflectError> {
        let attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let outcome = tokio::time::timeout(self.timeout, self.attempt(headers, body.clone())).await;
            let delay = match outcome {
                Err(_elapsed) => {
                    return Err(ReflectError::Timeout {
                        endpoint: self.label.clone(),
                        after: self.timeout,
                    });
                }
                Ok(Ok((status, _, body))) if status.is_success() => return Ok(body),
                Ok(Ok((status, headers, body))) => {
                    if attempt >= attempts || !is_retryable(status) {
                        return Err(ReflectError::Status {
                            endpoint: self.label.clone(),
                            status: status.as_u16(),
                            attempts: attempt,
                            body: excerpt(&body, BODY_EXCERPT_CHARS),
                        });
                    }
                    let delay = retry_after(&headers)
                        .unwrap_or_else(|| self.retry.backoff(attempt))
                        .min(self.retry.max_delay);
                    tracing::warn!(endpoint = %self.label, attempt, status = status.as_u16(), delay_ms = delay.as_millis() as u64, "model endpoint is busy or failing; retrying");
                    delay
                }
                Ok(Err(cause)) => {
                    if attempt >= attempts {
                        return Err(ReflectError::Connect {
                            endpoint: self.label.clone(),
                            attempts: attempt,
                            cause,
                        });
                    }
                    let delay = self.retry.backoff(attempt);
                    tracing::warn!(endpoint = %self.label, attempt, %cause, delay_ms = delay.as_millis() as u64, "model endpoint unreachable; retrying");
                    delay
                }
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One request and its whole body; a transport failure is described for the error message.
    async fn attempt(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        for (name, value) in headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| crate::errors::error_chain(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the response failed: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The server's requested delay: `retry-after-ms` (OpenAI), else `retry-after` in seconds
/// (fractions accepted). The HTTP-date form is not used by model APIs and falls back to backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let value: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

/// The start of a body as one line of text, for error messages.
pub(crate) fn excerpt(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".to_string();
    }
    crate::dream::reflector::truncate_chars(&line, max_chars)
}

/// `{base}{path}` as a URL: `base` is an endpoint's base URL (`https://api.anthropic.com`), with
/// or without a trailing `/` or `/v1` (OpenAI-compatible servers are often documented as
/// `http://host:8000/v1`), and `path` starts with `/v1/`.
pub(crate) fn endpoint_url(base: &str, path: &str) -> Result<Uri, ReflectError> {
    let invalid = |reason: &str| ReflectError::InvalidEndpoint {
        endpoint: base.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = base.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let uri: Uri = format!("{trimmed}{path}")
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("it must not have a query string"));
    }
    Ok(uri)
}

/// Whether `uri` goes over plain HTTP to a host other than this machine: an API key sent there
/// travels unencrypted.
pub(crate) fn is_plain_remote(uri: &Uri) -> bool {
    let loopback = match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    uri.scheme_str() == Some("http") && !loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_accept_common_spellings() {
        for base in [
            "https://api.anthropic.com",
            "https://api.anthropic.com/",
            "https://api.anthropic.com/v1/",
        ] {
            assert_eq!(
                endpoint_url(base, "/v1/messages").unwrap().to_string(),
                "https://api.anthropic.com/v1/messages"
            );
        }
        assert_eq!(
            endpoint_url("http://vllm.models:8000/v1", "/v1/chat/completions")
                .unwrap()
                .to_string(),
            "http://vllm.models:8000/v1/chat/completions"
        );
        assert_eq!(
            endpoint_url("http://gateway/openai", "/v1/chat/completions")
                .unwrap()
                .to_string(),
            "http://gateway/openai/v1/chat/completions"
        );
        for bad in [
            "api.anthropic.com",
            "ftp://host",
            "https://",
            "http://host/?key=1",
            "not a url",
        ] {
            let error = endpoint_url(bad, "/v1/messages").unwrap_err();
            assert!(matches!(error, ReflectError::InvalidEndpoint { .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn plain_http_is_flagged_only_off_this_machine() {
        let plain = |s: &str| is_plain_remote(&s.parse().unwrap());
        assert!(plain("http://vllm.models:8000/v1/chat/completions"));
        assert!(!plain("http://127.0.0.1:8000/v1/chat/completions"));
        assert!(!plain("http://localhost:8000/v1/chat/completions"));
        assert!(!plain("http://[::1]:8000/v1/chat/completions"));
        assert!(!plain("https://api.openai.com/v1/chat/completions"));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for (retry, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            let delay = policy.backoff(retry);
            let full = Duration::from_millis(full);
            assert!(delay >= full / 2 && delay <= full, "retry {retry}: {delay:?}");
        }
    }

    #[test]
    fn retry_after_prefers_milliseconds_then_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        headers.remove("retry-after-ms");
        headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(b"{\n  \"error\": \"bad\"\n}", 100), "{ \"error\": \"bad\" }");
        assert_eq!(excerpt(b"", 100), "(empty body)");
        assert_eq!(excerpt(&[b'a'; 400], 10), "aaaaaaaaaa…");
    }
}
