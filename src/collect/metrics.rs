//! The collector's Prometheus metrics (`/metrics` on the admin address).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

pub struct CollectMetrics {
    registry: Registry,
    /// GenAI spans kept for a session.
    pub spans_accepted: Counter,
    /// Spans that are not GenAI spans, dropped.
    pub spans_ignored: Counter,
    /// Spans refused, by reason (`unknown-agent`, `too-large`, `malformed`).
    pub spans_rejected: Family<ReasonLabels, Counter>,
    /// Session files written (a resumed session counts once per write).
    pub sessions_written: Counter,
    /// Failed writes (kept in memory and retried).
    pub write_errors: Counter,
    /// Export requests answered, by HTTP status.
    pub requests: Family<CodeLabels, Counter>,
    /// Bytes of spans waiting to be written.
    pub buffered_bytes: Gauge,
    /// Sessions waiting to be written.
    pub pending_sessions: Gauge,
}

impl Default for CollectMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("reverie_collect");
        let metrics = Self {
            spans_accepted: Counter::default(),
            spans_ignored: Counter::default(),
            spans_rejected: Family::default(),
            sessions_written: Counter::default(),
            write_errors: Counter::default(),
            requests: Family::default(),
            buffered_bytes: Gauge::default(),
            pending_sessions: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "spans_accepted",
            "GenAI spans kept for a session",
            metrics.spans_accepted.clone(),
        );
        registry.register(
            "spans_ignored",
            "Spans that are not GenAI spans, dropped",
            metrics.spans_ignored.clone(),
        );
        registry.register(
            "spans_rejected",
            "Spans refused, by reason",
            metrics.spans_rejected.clone(),
        );
        registry.register(
            "sessions_written",
            "Session files written",
            metrics.sessions_written.clone(),
        );
        registry.register(
            "write_errors",
            "Failed session writes (retried)",
            metrics.write_errors.clone(),
        );
        registry.register(
            "requests",
            "Export requests answered, by HTTP status",
            metrics.requests.clone(),
        );
        registry.register(
            "buffered_bytes",
            "Bytes of spans waiting to be written",
            metrics.buffered_bytes.clone(),
        );
        registry.register(
            "pending_sessions",
            "Sessions waiting to be written",
            metrics.pending_sessions.clone(),
        );
        Self { registry, ..metrics }
    }
}

impl CollectMetrics {
    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
