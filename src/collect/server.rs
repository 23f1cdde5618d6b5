//! The OTLP/HTTP endpoint: `POST /v1/traces` takes an export request, hands its GenAI spans to
//! the assembler and answers as the OTLP specification says: 200 (with a partial success when
//! spans were refused), 400 for a body that is not an export request, 413 past the size limit,
//! 415 for an unknown media type or encoding, and 503 with `Retry-After` when the collector
//! holds as much as it may: the sender keeps the batch and retries it, nothing is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use reverie_core::collect::Assembler;
use tokio::sync::{Mutex, Notify};

use super::agents::AgentDirectory;
use super::decode::{self, DecodeError, Encoding};
use super::metrics::{CodeLabels, CollectMetrics, ReasonLabels};

/// What the endpoint and the flusher share.
pub struct Shared {
    pub assembler: Mutex<Assembler>,
    pub agents: Arc<dyn AgentDirectory>,
    pub metrics: Arc<CollectMetrics>,
    /// Woken when the budget is reached, so the flusher makes room at once.
    pub pressure: Notify,
    /// Bytes of sessions whose write failed and waits for a retry: they count against the
    /// budget too.
    pub unwritten: AtomicUsize,
    /// The budget (`Limits::max_buffered_bytes`), for the unwritten check.
    pub max_buffered_bytes: usize,
    /// Largest accepted body, compressed or not.
    pub max_body_bytes: usize,
    /// What a refused sender is told to wait.
    pub retry_after: Duration,
}

/// `POST /v1/traces`.
pub fn otlp_router(shared: Arc<Shared>) -> Router {
    let limit = shared.max_body_bytes;
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn admin_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .with_state(shared)
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
}

async fn export(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header_value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let encoding = match Encoding::of(header_value(header::CONTENT_TYPE)) {
        Ok(encoding) => encoding,
        // The body cannot be answered in an encoding the sender did not name; JSON is readable.
        Err(e) => {
            return answer(
                &shared,
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &e.to_string(),
            );
        }
    };
    let request = decode::decompress(&body, header_value(header::CONTENT_ENCODING), shared.max_body_bytes)
        .and_then(|bytes| decode::request(&bytes, encoding));
    let request = match request {
        Ok(request) => request,
        Err(e) => {
            let status = match e {
                DecodeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                DecodeError::MediaType(_) | DecodeError::ContentEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                DecodeError::Gzip(_) | DecodeError::Malformed(_) => StatusCode::BAD_REQUEST,
            };
            return answer(&shared, encoding, status, &e.to_string());
        }
    };
    if shared.unwritten.load(Ordering::Relaxed) >= shared.max_buffered_bytes {
        return busy(
            &shared,
            encoding,
            "sessions cannot be written to the sessions volume; retrying them first",
        );
    }
    let offered = {
        let agents = shared.agents.clone();
        let is_agent = move |name: &str| agents.dir(name).is_some();
        let mut assembler = shared.assembler.lock().await;
        let offered = assembler.offer(&request, &is_agent, Timestamp::now());
        shared.metrics.buffered_bytes.set(assembler.buffered_bytes() as i64);
        shared.metrics.pending_sessions.set(assembler.pending_sessions() as i64);
        offered
    };
    let offer = match offered {
        Ok(offer) => offer,
        Err(full) => {
            shared.pressure.notify_one();
            return busy(&shared, encoding, &full.to_string());
        }
    };
    shared.metrics.spans_accepted.inc_by(offer.accepted);
    shared.metrics.spans_ignored.inc_by(offer.ignored);
    for (reason, count) in &offer.rejected {
        shared
            .metrics
            .spans_rejected
            .get_or_create(&ReasonLabels { reason: reason.label() })
            .inc_by(*count);
    }
    let message = rejection_message(&offer);
    shared.metrics.requests.get_or_create(&CodeLabels { code: 200 }).inc();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        decode::success(encoding, offer.rejected_total(), &message),
    )
        .into_response()
}

/// What a sender reads in a partial success: how many spans and why.
fn rejection_message(offer: &reverie_core::collect::Offer) -> String {
    let reasons: Vec<String> = offer
        .rejected
        .iter()
        .map(|(reason, count)| format!("{count} {}", reason.label()))
        .collect();
    if reasons.is_empty() {
        return String::new();
    }
    let mut message = format!("spans refused: {}", reasons.join(", "));
    if !offer.unknown_agents.is_empty() {
        message.push_str(&format!(
            "; no Agent with spec.sessions.collector is named {} (set OTEL_SERVICE_NAME to the Agent's name)",
            offer.unknown_agents.join(", ")
        ));
    }
    message
}

fn busy(shared: &Shared, encoding: Encoding, message: &str) -> Response {
    let mut response = answer(shared, encoding, StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        shared
            .retry_after
            .as_secs()
            .max(1)
            .to_string()
            .parse()
            .expect("digits are a header value"),
    );
    response
}

fn answer(shared: &Shared, encoding: Encoding, status: StatusCode, message: &str) -> Response {
    shared
        .metrics
        .requests
        .get_or_create(&CodeLabels { code: status.as_u16() })
        .inc();
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => decode::UNAVAILABLE,
        StatusCode::PAYLOAD_TOO_LARGE => decode::RESOURCE_EXHAUSTED,
        _ => decode::INVALID_ARGUMENT,
    };
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        decode::status(encoding, code, message),
    )
        .into_response()
}
