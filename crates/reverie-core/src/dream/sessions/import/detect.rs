//! Which format a file is in, from its first record (a JSONL file) or its root (a JSON
//! document). Each rule looks for what only that format writes, so a file of another kind is
//! reported as not recognised rather than read wrongly.

use serde_json::Value;

use super::Format;
use crate::dream::sessions::line::KNOWN_TYPES;

/// Line types of Codex rollouts; every line carries its content in `payload`.
const CODEX_TYPES: [&str; 5] = [
    "session_meta",
    "response_item",
    "event_msg",
    "turn_context",
    "compacted",
];

/// Line types of Claude Code sessions.
const CLAUDE_CODE_TYPES: [&str; 6] = [
    "user",
    "assistant",
    "summary",
    "system",
    "file-history-snapshot",
    "queue-operation",
];

/// Responses API item types, which the OpenAI importer reads alongside Chat messages.
pub(super) const RESPONSES_ITEM_TYPES: [&str; 4] = ["message", "function_call", "function_call_output", "reasoning"];

/// The format of a JSONL file whose first record is `first`.
pub fn first_record(first: &Value) -> Option<Format> {
    let object = first.as_object()?;
    if object.contains_key("resourceSpans") {
        return Some(Format::Otlp);
    }
    if let Some(Value::Array(events)) = object.get("data") {
        return events
            .first()
            .and_then(first_record)
            .filter(|f| *f == Format::ManagedAgents);
    }
    if object.contains_key("messages") || matches!(object.get("object").and_then(Value::as_str), Some("response")) {
        return Some(Format::Openai);
    }
    match object.get("type").and_then(Value::as_str) {
        Some(kind) if KNOWN_TYPES.contains(&kind) => Some(Format::Reverie),
        Some(kind) if CODEX_TYPES.contains(&kind) && object.get("payload").is_some_and(Value::is_object) => {
            Some(Format::Codex)
        }
        Some(kind)
            if CLAUDE_CODE_TYPES.contains(&kind)
                && ["sessionId", "leafUuid", "uuid", "messageId"]
                    .iter()
                    .any(|key| object.contains_key(*key)) =>
        {
            Some(Format::ClaudeCode)
        }
        Some(kind) if is_managed_agents_type(kind) => Some(Format::ManagedAgents),
        Some(kind) if RESPONSES_ITEM_TYPES.contains(&kind) => Some(Format::Openai),
        None if object.get("role").is_some_and(Value::is_string) => Some(Format::Openai),
        _ => None,
    }
}

/// The format of a JSON document.
pub fn document(root: &Value) -> Option<Format> {
    match root {
        Value::Array(items) => {
            let first = items.first()?;
            if first.is_array() {
                return None;
            }
            first_record(first).filter(|f| matches!(f, Format::Openai | Format::ManagedAgents))
        }
        Value::Object(object) if object.contains_key("input") || object.contains_key("output") => object
            .contains_key("model")
            .then_some(Format::Openai)
            .or_else(|| first_record(root)),
        Value::Object(_) => first_record(root),
        _ => None,
    }
}

/// `user.message`, `agent.tool_use`, `session.status_idle`, …: a lowercase namespace, a dot,
/// a lowercase name.
fn is_managed_agents_type(kind: &str) -> bool {
    let Some((namespace, name)) = kind.split_once('.') else {
        return false;
    };
    matches!(namespace, "user" | "agent" | "session" | "span")
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
}
