//! OpenTelemetry GenAI spans in OTLP/JSON, as the Collector's file exporter writes them (one
//! `ExportTraceServiceRequest` per line) or as one `.json` document.
//!
//! Implements the GenAI semantic conventions v1.38.0 (and reads the per-message events of
//! v1.36 and before): spans are grouped into sessions by
//! `gen_ai.conversation.id` (a span without one joins its trace's conversation, else its trace
//! is the session); `execute_tool` spans are tool calls (`gen_ai.tool.name`,
//! `gen_ai.tool.call.arguments`) whose span status says whether they failed; inference spans
//! contribute their messages (`gen_ai.input.messages` / `gen_ai.output.messages`, on the span or
//! on its `gen_ai.client.inference.operation.details` event; the older per-message events
//! `gen_ai.user.message`, `gen_ai.assistant.message` and `gen_ai.choice` too); the agent is
//! `gen_ai.agent.name`, else the resource's `service.name`.
//!
//! Spans of a conversation can arrive in any order and any batch, so a file is read whole
//! before its sessions are emitted, each in start-time order. Inference spans resend the whole
//! history each call, so a message already seen in the session is not repeated; tool calls come
//! from the tool spans only.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::content;
use super::{Flow, ImportSink, Importer, OwnedRecord, SessionHeader, Used};
use crate::dream::model::Role;

/// The semantic-conventions version these rules follow.
pub const SEMCONV_VERSION: &str = "1.38.0";

#[derive(Default)]
pub struct Otlp {
    spans: Vec<Span>,
}

/// What a dream needs of one span.
struct Span {
    trace: String,
    conversation: Option<String>,
    agent: Option<String>,
    start: u64,
    end: u64,
    tool: Option<Tool>,
    messages: Vec<(Role, String)>,
    /// The resource's `reverie.memory.revision`: the memory revision the agent ran with.
    memory_revision: Option<u64>,
}

/// The resource attribute naming the memory revision the agent ran with (the runtime
/// Deployment sets it through `OTEL_RESOURCE_ATTRIBUTES`).
pub const MEMORY_REVISION_ATTRIBUTE: &str = "reverie.memory.revision";

struct Tool {
    name: String,
    values: Vec<u64>,
    error: Option<String>,
}

impl Importer for Otlp {
    fn record(&mut self, request: Value, _sink: &mut dyn ImportSink) -> (Used, Flow) {
        let Some(Value::Array(resources)) = request.get("resourceSpans") else {
            return (Used::Malformed, Flow::Continue(()));
        };
        let before = self.spans.len();
        for resource in resources {
            let resource_attributes = attributes(resource.get("resource").and_then(|r| r.get("attributes")));
            let service = string(&resource_attributes, "service.name");
            let revision = resource_attributes.get(MEMORY_REVISION_ATTRIBUTE).and_then(number);
            let Some(Value::Array(scopes)) = resource.get("scopeSpans") else {
                continue;
            };
            for scope in scopes {
                let Some(Value::Array(spans)) = scope.get("spans") else {
                    continue;
                };
                self.spans.extend(
                    spans
                        .iter()
                        .filter_map(|span| Span::read(span, service.as_deref(), revision)),
                );
            }
        }
        let used = if self.spans.len() > before {
            Used::Read
        } else {
            Used::Ignored
        };
        (used, Flow::Continue(()))
    }

    fn document(&mut self, value: Value, sink: &mut dyn ImportSink) -> super::Counts {
        let (used, _) = self.record(value, sink);
        self.finish(sink);
        let mut counts = super::Counts::default();
        counts.add(used);
        counts
    }

    fn finish(&mut self, sink: &mut dyn ImportSink) {
        for session in sessions(std::mem::take(&mut self.spans)) {
            if sink.start(session.header).is_break() {
                return;
            }
            for record in &session.records {
                sink.record(record);
            }
            if sink.end().is_break() {
                return;
            }
        }
    }
}

struct Session {
    header: SessionHeader,
    records: Vec<OwnedRecord>,
}

/// Groups spans into sessions, oldest first, each with its records in time order.
fn sessions(spans: Vec<Span>) -> Vec<Session> {
    let trace_conversation: HashMap<&str, &str> = spans
        .iter()
        .filter_map(|s| Some((s.trace.as_str(), s.conversation.as_deref()?)))
        .collect();
    let mut groups: BTreeMap<String, Vec<&Span>> = BTreeMap::new();
    for span in &spans {
        let key = span
            .conversation
            .as_deref()
            .or_else(|| trace_conversation.get(span.trace.as_str()).copied())
            .map_or_else(|| span.trace.clone(), str::to_string);
        groups.entry(key).or_default().push(span);
    }
    let mut sessions: Vec<(u64, Session)> = groups
        .into_iter()
        .map(|(id, mut spans)| {
            spans.sort_by_key(|s| (s.start, s.end));
            let first = spans.first().map_or(0, |s| s.start);
            (first, session(id, &spans))
        })
        .collect();
    sessions.sort_by(|a, b| (a.0, &a.1.header.id).cmp(&(b.0, &b.1.header.id)));
    sessions.into_iter().map(|(_, s)| s).collect()
}

fn session(id: String, spans: &[&Span]) -> Session {
    let mut records = Vec::new();
    let mut seen_messages = HashSet::new();
    for span in spans {
        let start = nanos(span.start);
        for (role, text) in &span.messages {
            if seen_messages.insert((*role as u8, text.as_str())) {
                records.push(OwnedRecord::Message {
                    role: *role,
                    text: text.clone(),
                    ts: start,
                });
            }
        }
        if let Some(tool) = &span.tool {
            records.push(OwnedRecord::ToolCall {
                name: tool.name.clone(),
                values: tool.values.clone(),
                ts: start,
            });
            records.push(OwnedRecord::ToolResult {
                name: tool.name.clone(),
                ok: tool.error.is_none(),
                error: tool.error.clone(),
                ts: nanos(span.end),
            });
        }
    }
    Session {
        header: SessionHeader {
            id: Some(id),
            agent: spans.iter().find_map(|s| s.agent.clone()),
            started: spans.first().and_then(|s| nanos(s.start)),
            // The revision the conversation started with.
            labels: spans
                .iter()
                .find_map(|s| s.memory_revision)
                .map(|revision| {
                    BTreeMap::from([(
                        crate::dream::model::MEMORY_REVISION_LABEL.to_string(),
                        revision.to_string(),
                    )])
                })
                .unwrap_or_default(),
        },
        records,
    }
}

fn nanos(n: u64) -> Option<Timestamp> {
    (n > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(n)).ok())
        .flatten()
}

impl Span {
    /// The span, if it is a GenAI one (it has a `gen_ai.operation.name`).
    fn read(span: &Value, service: Option<&str>, memory_revision: Option<u64>) -> Option<Span> {
        let attrs = attributes(span.get("attributes"));
        let operation = string(&attrs, "gen_ai.operation.name")?;
        let time = |key: &str| span.get(key).and_then(number).unwrap_or(0);
        let mut messages = Vec::new();
        let events = match span.get("events") {
            Some(Value::Array(events)) => events.as_slice(),
            _ => &[],
        };
        read_messages(&attrs, &mut messages);
        for event in events {
            let event_attrs = attributes(event.get("attributes"));
            match event.get("name").and_then(Value::as_str) {
                Some("gen_ai.client.inference.operation.details") => read_messages(&event_attrs, &mut messages),
                Some(name) => read_event_message(name, &event_attrs, &mut messages),
                None => {}
            }
        }
        let tool = (operation == "execute_tool").then(|| {
            let failed = matches!(span.get("status").and_then(|s| s.get("code")), Some(code) if is_error_code(code));
            let error = failed.then(|| {
                span.get("status")
                    .and_then(|s| content::str_field(s, "message"))
                    .map(str::to_string)
                    .or_else(|| string(&attrs, "error.type"))
                    .unwrap_or_else(|| "tool error".to_string())
            });
            Tool {
                name: string(&attrs, "gen_ai.tool.name").unwrap_or_else(|| super::UNKNOWN_TOOL.to_string()),
                values: attrs
                    .get("gen_ai.tool.call.arguments")
                    .map(content::values)
                    .unwrap_or_default(),
                error,
            }
        });
        Some(Span {
            trace: span
                .get("traceId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            conversation: string(&attrs, "gen_ai.conversation.id"),
            agent: string(&attrs, "gen_ai.agent.name").or_else(|| service.map(str::to_string)),
            start: time("startTimeUnixNano"),
            end: time("endTimeUnixNano"),
            tool,
            messages,
            memory_revision,
        })
    }
}

/// `STATUS_CODE_ERROR`, as OTLP/JSON writes the enum (by number or by name).
fn is_error_code(code: &Value) -> bool {
    code.as_u64() == Some(2) || code.as_str() == Some("STATUS_CODE_ERROR")
}

/// The text messages of `gen_ai.input.messages` and `gen_ai.output.messages`. System
/// instructions are not conversation; tool parts are read from the tool spans.
fn read_messages(attrs: &Map<String, Value>, messages: &mut Vec<(Role, String)>) {
    for key in ["gen_ai.input.messages", "gen_ai.output.messages"] {
        let Some(Value::Array(list)) = attrs.get(key).map(json_value) else {
            continue;
        };
        for message in &list {
            let role = match message.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                _ => continue,
            };
            let text: Vec<&str> = match message.get("parts") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|p| p.get("content").and_then(Value::as_str))
                    .collect(),
                _ => Vec::new(),
            };
            let text = text.join("\n");
            if !text.trim().is_empty() {
                messages.push((role, text));
            }
        }
    }
}

/// A message of the per-message events older instrumentations emit.
fn read_event_message(name: &str, attrs: &Map<String, Value>, messages: &mut Vec<(Role, String)>) {
    let role = match name {
        "gen_ai.user.message" => Role::User,
        "gen_ai.assistant.message" | "gen_ai.choice" => Role::Assistant,
        _ => return,
    };
    let body = ["gen_ai.event.content", "content", "message"]
        .iter()
        .find_map(|key| attrs.get(*key))
        .map(json_value);
    let text = match body {
        Some(Value::String(text)) => text,
        Some(body @ Value::Object(_)) => {
            let inner = body.get("message").unwrap_or(&body);
            content::text(inner.get("content").unwrap_or(&Value::Null))
        }
        _ => return,
    };
    if !text.trim().is_empty() {
        messages.push((role, text));
    }
}

/// A JSON value from an attribute: a string holding JSON is parsed (the conventions record
/// structured attributes as JSON strings), anything else is taken as is.
fn json_value(value: &Value) -> Value {
    match value {
        Value::String(s) if s.trim_start().starts_with(['[', '{']) => {
            serde_json::from_str(s).unwrap_or_else(|_| value.clone())
        }
        other => other.clone(),
    }
}

/// OTLP key/value attributes as a JSON object of plain values.
pub(crate) fn attributes(list: Option<&Value>) -> Map<String, Value> {
    let Some(Value::Array(list)) = list else {
        return Map::new();
    };
    list.iter()
        .filter_map(|kv| {
            let key = kv.get("key")?.as_str()?;
            Some((key.to_string(), any_value(kv.get("value")?)))
        })
        .collect()
}

/// An OTLP `AnyValue` as plain JSON.
fn any_value(value: &Value) -> Value {
    let Some(object) = value.as_object() else {
        return Value::Null;
    };
    if let Some(v) = object.get("stringValue") {
        return v.clone();
    }
    if let Some(v) = object.get("boolValue") {
        return v.clone();
    }
    if let Some(v) = object.get("intValue") {
        return number(v).map_or(Value::Null, Value::from);
    }
    if let Some(v) = object.get("doubleValue") {
        return v.clone();
    }
    if let Some(values) = object
        .get("arrayValue")
        .and_then(|a| a.get("values"))
        .and_then(Value::as_array)
    {
        return Value::Array(values.iter().map(any_value).collect());
    }
    if let Some(values) = object.get("kvlistValue").and_then(|a| a.get("values")) {
        return Value::Object(attributes(Some(values)));
    }
    Value::Null
}

pub(crate) fn string(attrs: &Map<String, Value>, key: &str) -> Option<String> {
    attrs
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A 64-bit integer as OTLP/JSON writes it: a decimal string or a number.
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}
