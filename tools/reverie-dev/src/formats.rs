//! reverie session JSONL rendered as the other formats reverie reads: OpenAI conversations,
//! Claude Code session logs and OpenTelemetry GenAI spans (OTLP/JSON). For the tests that check
//! the importers lose nothing a dream uses, and for the per-format reading benchmarks.
//!
//! A rendering carries what its format can carry: OpenAI conversations keep the session's
//! labels and outcome; Claude Code logs and OTLP spans keep neither; none keeps reviewer
//! feedback. [`reverie_jsonl`] cuts a session down to exactly what a format keeps, for the
//! comparison.

use serde_json::{Value, json};

/// What a format carries besides messages and tool calls.
#[derive(Clone, Copy, Debug)]
pub struct Carries {
    pub labels: bool,
    pub outcome: bool,
}

/// A format a session can be rendered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    Openai,
    ClaudeCode,
    Otlp,
}

impl Rendering {
    pub const ALL: [Rendering; 3] = [Rendering::Openai, Rendering::ClaudeCode, Rendering::Otlp];

    /// The `--format` name.
    pub fn name(self) -> &'static str {
        match self {
            Rendering::Openai => "openai",
            Rendering::ClaudeCode => "claude-code",
            Rendering::Otlp => "otlp",
        }
    }

    /// The file suffix agents write.
    pub fn suffix(self) -> &'static str {
        match self {
            Rendering::Openai => ".json",
            Rendering::ClaudeCode => ".jsonl",
            Rendering::Otlp => ".otlp.jsonl",
        }
    }

    pub fn carries(self) -> Carries {
        match self {
            Rendering::Openai => Carries {
                labels: true,
                outcome: true,
            },
            Rendering::ClaudeCode | Rendering::Otlp => Carries {
                labels: false,
                outcome: false,
            },
        }
    }

    /// `session` (its JSON records, in order) in this format.
    pub fn render(self, session: &[Value]) -> String {
        match self {
            Rendering::Openai => openai(session),
            Rendering::ClaudeCode => claude_code(session),
            Rendering::Otlp => otlp(session),
        }
    }
}

/// The JSON records of a reverie JSONL text (broken lines left out).
pub fn records(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

/// The session id of a session's records; a session without one (reverie names it after its
/// file) gets one made from its content, since OpenAI and OTLP renderings must carry an id to
/// stay one session.
pub fn session_id(session: &[Value]) -> String {
    match header(session)["id"].as_str() {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for record in session {
                record.to_string().hash(&mut hasher);
            }
            format!("session-{:016x}", hasher.finish())
        }
    }
}

/// The session as reverie JSONL, without what the format cannot carry.
pub fn reverie_jsonl(session: &[Value], carries: Carries) -> String {
    let mut out = String::new();
    for record in session {
        let mut record = record.clone();
        match record["type"].as_str() {
            Some("feedback") => continue,
            Some("outcome") if !carries.outcome => continue,
            Some("session") if !carries.labels => {
                if let Some(fields) = record.as_object_mut() {
                    fields.remove("labels");
                }
            }
            _ => {}
        }
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}

/// The `session` record (`null` when there is none).
fn header(session: &[Value]) -> &Value {
    const NONE: &Value = &Value::Null;
    session.iter().find(|r| r["type"] == "session").unwrap_or(NONE)
}

/// The index of the call a result at `n` answers: the latest earlier call of the same tool.
fn call_of(session: &[Value], n: usize) -> usize {
    let name = &session[n]["name"];
    session[..n]
        .iter()
        .rposition(|r| r["type"] == "tool_call" && &r["name"] == name)
        .unwrap_or(n)
}

/// An OpenAI conversation: `messages` plus the metadata the importer reads.
fn openai(session: &[Value]) -> String {
    let head = header(session);
    let mut messages = Vec::new();
    let mut outcome = Value::Null;
    for (n, record) in session.iter().enumerate() {
        let call_id = |n: usize| format!("call_{n}");
        match record["type"].as_str() {
            Some("message") => messages.push(json!({"role": record["role"], "content": record["text"]})),
            Some("tool_call") => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": call_id(n), "type": "function",
                "function": {"name": record["name"], "arguments": record["input"].to_string()},
            }]})),
            Some("tool_result") => {
                let call = call_of(session, n);
                let content = if record["ok"] == false {
                    json!({"error": record["error"]}).to_string()
                } else {
                    json!({"status": "ok"}).to_string()
                };
                messages.push(json!({"role": "tool", "tool_call_id": call_id(call), "content": content}));
            }
            Some("outcome") => outcome = json!({"success": record["success"], "score": record["score"]}),
            _ => {}
        }
    }
    json!({"id": session_id(session), "agent": head["agent"], "started": head["started"], "labels": head["labels"],
           "outcome": outcome, "messages": messages})
    .to_string()
}

/// A Claude Code session log.
fn claude_code(session: &[Value]) -> String {
    let id = session_id(session);
    let id = id.as_str();
    let mut lines = vec![json!({"type": "summary", "summary": "support", "leafUuid": "x"})];
    for (n, record) in session.iter().enumerate() {
        let line = |kind: &str, role: &str, content: Value| {
            json!({"type": kind, "sessionId": id, "uuid": format!("u{n}"), "cwd": "/srv/support",
                   "timestamp": record["ts"], "isSidechain": false, "message": {"role": role, "content": content}})
        };
        match (record["type"].as_str(), record["role"].as_str()) {
            (Some("message"), Some("user")) => lines.push(line("user", "user", record["text"].clone())),
            (Some("message"), Some(_)) => {
                lines.push(line("assistant", "assistant", json!([{"type": "text", "text": record["text"]}])));
            }
            (Some("tool_call"), _) => lines.push(line(
                "assistant",
                "assistant",
                json!([{"type": "tool_use", "id": format!("toolu_{n}"), "name": record["name"], "input": record["input"]}]),
            )),
            (Some("tool_result"), _) => {
                let call = call_of(session, n);
                let failed = record["ok"] == false;
                let content = if failed { record["error"].clone() } else { json!("done") };
                lines.push(line(
                    "user",
                    "user",
                    json!([{"type": "tool_result", "tool_use_id": format!("toolu_{call}"), "content": content, "is_error": failed}]),
                ));
            }
            _ => {}
        }
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn nanos(ts: &Value) -> String {
    ts.as_str()
        .and_then(|ts| ts.parse::<jiff::Timestamp>().ok())
        .map_or_else(|| "0".to_string(), |at| at.as_nanosecond().to_string())
}

/// OpenTelemetry GenAI spans as the Collector's file exporter writes them: a chat span per
/// message, an `execute_tool` span per call with its status.
fn otlp(session: &[Value]) -> String {
    let head = header(session);
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let conversation = session_id(session);
    let conversation = conversation.as_str();
    let mut spans = Vec::new();
    for (n, record) in session.iter().enumerate() {
        // A record without a time keeps its place: spans of one time stay in file order.
        let ts = record.get("ts").unwrap_or(&Value::Null);
        let mut attributes = vec![attribute("gen_ai.conversation.id", conversation)];
        let mut status = json!({});
        match record["type"].as_str() {
            Some("message") => {
                let key = if record["role"] == "user" {
                    "gen_ai.input.messages"
                } else {
                    "gen_ai.output.messages"
                };
                let messages =
                    json!([{"role": record["role"], "parts": [{"type": "text", "content": record["text"]}]}]);
                attributes.push(attribute("gen_ai.operation.name", "chat"));
                attributes.push(attribute(key, &messages.to_string()));
            }
            Some("tool_call") => {
                let result = session[n..]
                    .iter()
                    .find(|r| r["type"] == "tool_result" && r["name"] == record["name"]);
                attributes.push(attribute("gen_ai.operation.name", "execute_tool"));
                attributes.push(attribute(
                    "gen_ai.tool.name",
                    record["name"].as_str().unwrap_or_default(),
                ));
                attributes.push(attribute("gen_ai.tool.call.arguments", &record["input"].to_string()));
                if let Some(result) = result.filter(|r| r["ok"] == false) {
                    status = json!({"code": 2, "message": result["error"]});
                }
            }
            _ => continue,
        }
        spans.push(json!({
            "traceId": format!("{:032x}", n / 8 + 1), "spanId": format!("{n:016x}"), "name": "span",
            "startTimeUnixNano": nanos(ts), "endTimeUnixNano": nanos(ts),
            "attributes": attributes, "status": status,
        }));
    }
    let request = json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", head["agent"].as_str().unwrap_or("agent"))]},
        "scopeSpans": [{"scope": {"name": "agent"}, "spans": spans}],
    }]});
    format!("{request}\n")
}
