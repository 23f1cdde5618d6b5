//! Assembles OpenTelemetry GenAI spans, as they arrive from running agents in any order and any
//! batch, into whole sessions, and renders each as an OTLP/JSON line the `otlp` importer reads.
//!
//! The receiver (`reverie collect`) owns the sockets and the files; this module owns the rules:
//! which spans are kept (GenAI spans of a known agent), how they are grouped (by
//! `gen_ai.conversation.id`, else by trace, and a trace joins its conversation as soon as one of
//! its spans names it), how much may be held (a byte budget: a batch that would exceed it is
//! refused whole, so the sender retries it rather than losing part of it) and when a session is
//! complete (nothing new for the idle timeout).
//!
//! Span and resource JSON is kept serialized, so the budget counts real bytes and a flush is a
//! concatenation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::dream::sessions::import::otlp::{attributes, string};

/// How much the assembler may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Serialized span and resource bytes held across all pending sessions.
    pub max_buffered_bytes: usize,
    /// One span larger than this is refused (a hostile or runaway attribute).
    pub max_span_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_buffered_bytes: 64 << 20,
            max_span_bytes: 1 << 20,
        }
    }
}

/// One session of one agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// The Agent the spans were mapped to.
    pub agent: String,
    /// The conversation id, else the trace id.
    pub session: String,
}

/// Why a span was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// Neither `service.name` nor `gen_ai.agent.name` names an Agent this receiver writes for.
    UnknownAgent,
    /// Larger than [`Limits::max_span_bytes`].
    TooLarge,
    /// Not a span object (no trace id).
    Malformed,
}

impl Rejection {
    /// The metric label and the word used in the response's error message.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::UnknownAgent => "unknown-agent",
            Rejection::TooLarge => "too-large",
            Rejection::Malformed => "malformed",
        }
    }
}

/// What became of one export request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// GenAI spans kept for a session.
    pub accepted: u64,
    /// Spans that are not GenAI spans (HTTP, database …): nothing a dream reads, dropped.
    pub ignored: u64,
    /// Spans refused, by reason; the sender is told how many (OTLP partial success).
    pub rejected: BTreeMap<Rejection, u64>,
    /// Agent names that were not recognised (at most a few, for the error message).
    pub unknown_agents: Vec<String>,
}

impl Offer {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Counts a refused span, keeping the first few unknown names for the error message.
    fn reject(&mut self, rejection: Rejection, name: Option<String>) {
        *self.rejected.entry(rejection).or_default() += 1;
        if let Some(name) = name
            && self.unknown_agents.len() < 3
            && !self.unknown_agents.contains(&name)
        {
            self.unknown_agents.push(name);
        }
    }
}

/// The batch would take the assembler over its byte budget: nothing of it was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{buffered} bytes of sessions are waiting to be written; a batch of {incoming} bytes would exceed the {limit}-byte budget"
)]
pub struct Full {
    pub buffered: usize,
    pub incoming: usize,
    pub limit: usize,
}

/// A session ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct Complete {
    pub key: SessionKey,
    pub spans: usize,
    /// One `ExportTraceServiceRequest` in OTLP/JSON, ending with a newline.
    pub line: String,
}

#[derive(Debug)]
struct Pending {
    /// Distinct serialized resources of the session's spans.
    resources: Vec<String>,
    /// Serialized spans, each with the index of its resource.
    spans: Vec<(usize, String)>,
    bytes: usize,
    last_seen: Timestamp,
    /// Trace ids of the spans, to clear the trace index when the session is written.
    traces: Vec<String>,
}

impl Pending {
    fn new(now: Timestamp) -> Self {
        Self {
            resources: Vec::new(),
            spans: Vec::new(),
            bytes: 0,
            last_seen: now,
            traces: Vec::new(),
        }
    }

    /// Adds a span; its resource is stored once per session.
    fn push(&mut self, resource: &str, span: String) {
        let index = match self.resources.iter().position(|r| r == resource) {
            Some(index) => index,
            None => {
                self.resources.push(resource.to_string());
                self.bytes += resource.len();
                self.resources.len() - 1
            }
        };
        self.bytes += span.len();
        self.spans.push((index, span));
    }
}

/// A GenAI span, checked and serialized, on its way into a session.
struct Staged {
    agent: String,
    trace: String,
    conversation: Option<String>,
    resource: usize,
    span: String,
}

/// Pending sessions and the trace → conversation index.
#[derive(Debug)]
pub struct Assembler {
    limits: Limits,
    pending: HashMap<SessionKey, Pending>,
    /// Traces of a pending session, by agent and trace id: a span without a conversation id
    /// joins the session its trace belongs to.
    traces: HashMap<(String, String), String>,
    buffered: usize,
}

impl Assembler {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pending: HashMap::new(),
            traces: HashMap::new(),
            buffered: 0,
        }
    }

    /// Bytes held.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Sessions held.
    pub fn pending_sessions(&self) -> usize {
        self.pending.len()
    }

    /// Takes the GenAI spans of one OTLP/JSON `ExportTraceServiceRequest`. `is_agent` says
    /// whether a name is an Agent this receiver writes for. All or nothing against the byte
    /// budget: on [`Full`] nothing was kept.
    pub fn offer(&mut self, request: &Value, is_agent: &dyn Fn(&str) -> bool, now: Timestamp) -> Result<Offer, Full> {
        let mut offer = Offer::default();
        let mut resources: Vec<String> = Vec::new();
        let mut staged: Vec<Staged> = Vec::new();
        for resource_spans in array(request.get("resourceSpans")) {
            let resource = resource_spans.get("resource").cloned().unwrap_or(Value::Null);
            let service = string(&attributes(resource.get("attributes")), "service.name");
            let resource_index = resources.len();
            resources.push(resource.to_string());
            for scope in array(resource_spans.get("scopeSpans")) {
                for span in array(scope.get("spans")) {
                    match stage(span, service.as_deref(), resource_index, is_agent, &self.limits) {
                        Ok(Some(span)) => staged.push(span),
                        Ok(None) => offer.ignored += 1,
                        Err((rejection, name)) => offer.reject(rejection, name),
                    }
                }
            }
        }
        let incoming: usize = staged.iter().map(|s| s.span.len() + resources[s.resource].len()).sum();
        if self.buffered > 0 && self.buffered + incoming > self.limits.max_buffered_bytes {
            return Err(Full {
                buffered: self.buffered,
                incoming,
                limit: self.limits.max_buffered_bytes,
            });
        }
        offer.accepted = staged.len() as u64;
        for span in staged {
            self.keep(span, &resources, now);
        }
        Ok(offer)
    }

    fn keep(&mut self, span: Staged, resources: &[String], now: Timestamp) {
        let trace_key = (span.agent.clone(), span.trace.clone());
        let session = match &span.conversation {
            Some(conversation) => {
                self.join_trace_to_conversation(&trace_key, conversation);
                conversation.clone()
            }
            None => self
                .traces
                .get(&trace_key)
                .cloned()
                .unwrap_or_else(|| span.trace.clone()),
        };
        self.traces.insert(trace_key, session.clone());
        let key = SessionKey {
            agent: span.agent,
            session,
        };
        let pending = self.pending.entry(key).or_insert_with(|| Pending::new(now));
        if !pending.traces.contains(&span.trace) {
            pending.traces.push(span.trace);
        }
        let before = pending.bytes;
        pending.push(&resources[span.resource], span.span);
        pending.last_seen = now;
        self.buffered += pending.bytes - before;
    }

    /// Spans of a trace that arrived before the span naming its conversation (children end,
    /// and are exported, before their parent) move into the conversation's session.
    fn join_trace_to_conversation(&mut self, trace_key: &(String, String), conversation: &str) {
        // Only a trace whose spans so far named no conversation sits in a session of its own.
        let (agent, trace) = trace_key;
        if conversation == trace || self.traces.get(trace_key) != Some(trace) {
            return;
        }
        let from = SessionKey {
            agent: agent.clone(),
            session: trace.clone(),
        };
        let Some(orphans) = self.pending.remove(&from) else {
            return;
        };
        self.buffered -= orphans.bytes;
        let into = self
            .pending
            .entry(SessionKey {
                agent: agent.clone(),
                session: conversation.to_string(),
            })
            .or_insert_with(|| Pending::new(orphans.last_seen));
        let before = into.bytes;
        for (resource, span) in orphans.spans {
            into.push(&orphans.resources[resource], span);
        }
        into.traces.extend(orphans.traces);
        into.last_seen = into.last_seen.max(orphans.last_seen);
        self.buffered += into.bytes - before;
    }

    /// Sessions with nothing new for `idle`, oldest first.
    pub fn take_idle(&mut self, now: Timestamp, idle: Duration) -> Vec<Complete> {
        let idle = jiff::SignedDuration::try_from(idle).unwrap_or(jiff::SignedDuration::MAX);
        let due: Vec<SessionKey> = self
            .by_age()
            .into_iter()
            .take_while(|(_, last_seen)| now.duration_since(*last_seen) >= idle)
            .map(|(key, _)| key)
            .collect();
        due.into_iter().filter_map(|key| self.take(&key)).collect()
    }

    /// The least recently active sessions, until at most `target` bytes are held: how the
    /// receiver makes room under pressure (a session written early is completed by appending).
    pub fn take_oldest(&mut self, target: usize) -> Vec<Complete> {
        let mut taken = Vec::new();
        for (key, _) in self.by_age() {
            if self.buffered <= target {
                break;
            }
            taken.extend(self.take(&key));
        }
        taken
    }

    /// Every pending session (at shutdown).
    pub fn take_all(&mut self) -> Vec<Complete> {
        self.take_oldest(0)
    }

    fn by_age(&self) -> Vec<(SessionKey, Timestamp)> {
        let mut keys: Vec<(SessionKey, Timestamp)> =
            self.pending.iter().map(|(k, p)| (k.clone(), p.last_seen)).collect();
        keys.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        keys
    }

    fn take(&mut self, key: &SessionKey) -> Option<Complete> {
        let pending = self.pending.remove(key)?;
        self.buffered -= pending.bytes;
        for trace in &pending.traces {
            self.traces.remove(&(key.agent.clone(), trace.clone()));
        }
        Some(Complete {
            key: key.clone(),
            spans: pending.spans.len(),
            line: render(&pending),
        })
    }
}

/// Checks one span: `Ok(None)` for a span that is not a GenAI span, else the span with its
/// agent, trace and conversation, serialized; a refusal names the agent it could not map.
fn stage(
    span: &Value,
    service: Option<&str>,
    resource: usize,
    is_agent: &dyn Fn(&str) -> bool,
    limits: &Limits,
) -> Result<Option<Staged>, (Rejection, Option<String>)> {
    let Some(trace) = span.get("traceId").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
        return Err((Rejection::Malformed, None));
    };
    let attrs = attributes(span.get("attributes"));
    if string(&attrs, "gen_ai.operation.name").is_none() {
        return Ok(None);
    }
    let named = string(&attrs, "gen_ai.agent.name");
    let agent = [service, named.as_deref()]
        .into_iter()
        .flatten()
        .find(|name| is_agent(name))
        .map(str::to_string);
    let Some(agent) = agent else {
        return Err((Rejection::UnknownAgent, service.map(str::to_string).or(named)));
    };
    let serialized = span.to_string();
    if serialized.len() > limits.max_span_bytes {
        return Err((Rejection::TooLarge, None));
    }
    Ok(Some(Staged {
        agent,
        trace: trace.to_string(),
        conversation: string(&attrs, "gen_ai.conversation.id"),
        resource,
        span: serialized,
    }))
}

/// The session as one `ExportTraceServiceRequest` line: a `resourceSpans` entry per distinct
/// resource, the spans in arrival order.
fn render(pending: &Pending) -> String {
    let mut line = String::with_capacity(pending.bytes + 64 * (pending.resources.len() + 1));
    line.push_str("{\"resourceSpans\":[");
    for (index, resource) in pending.resources.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push_str("{\"resource\":");
        line.push_str(resource);
        line.push_str(",\"scopeSpans\":[{\"scope\":{\"name\":\"reverie-collect\"},\"spans\":[");
        let spans = pending
            .spans
            .iter()
            .filter(|(r, _)| *r == index)
            .map(|(_, s)| s.as_str());
        for (n, span) in spans.enumerate() {
            if n > 0 {
                line.push(',');
            }
            line.push_str(span);
        }
        line.push_str("]}]}");
    }
    line.push_str("]}\n");
    line
}

fn array(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
