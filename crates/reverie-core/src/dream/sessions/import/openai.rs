//! OpenAI transcripts: Chat Completions messages and Responses API items.
//!
//! A file is either one conversation (a JSON array of messages or items, a JSON object with a
//! `messages` array and optional metadata, a Responses `response` object, or JSONL with one
//! message or item per line) or many (JSONL with one conversation per line). The first record
//! decides which.

use serde_json::{Map, Value};

use super::content::{self, str_field};
use super::{Calls, Flow, ImportSink, Importer, Open, OwnedRecord, SessionHeader, UNKNOWN_TOOL, Used};
use crate::dream::model::Role;

#[derive(Default)]
pub struct OpenAi {
    mode: Option<Mode>,
    /// The one conversation of a message-per-record file.
    open: Open,
    items: Items,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each record is a whole conversation.
    Conversations,
    /// Each record is one message or item of the file's only conversation.
    Messages,
}

impl Importer for OpenAi {
    fn record(&mut self, value: Value, sink: &mut dyn ImportSink) -> (Used, Flow) {
        let is_conversation = is_conversation(&value);
        let mode = *self.mode.get_or_insert(if is_conversation {
            Mode::Conversations
        } else {
            Mode::Messages
        });
        match mode {
            Mode::Conversations if is_conversation => conversation(value, sink),
            Mode::Messages if !is_conversation && value.is_object() => {
                if self.open.start(SessionHeader::default, sink).is_break() {
                    return (Used::Read, Flow::Break(()));
                }
                let mut emit = |record: OwnedRecord| self.open.record(&record, sink);
                (self.items.convert(&value, &mut emit), Flow::Continue(()))
            }
            _ => (Used::Malformed, Flow::Continue(())),
        }
    }

    fn finish(&mut self, sink: &mut dyn ImportSink) {
        let _ = self.open.end(sink);
    }
}

/// Whether `value` is a whole conversation rather than one message of one.
fn is_conversation(value: &Value) -> bool {
    match value {
        Value::Array(_) => true,
        Value::Object(object) => {
            object.contains_key("messages") || object.get("object").and_then(Value::as_str) == Some("response")
        }
        _ => false,
    }
}

/// One conversation, with what its metadata says: header, messages, outcome.
fn conversation(value: Value, sink: &mut dyn ImportSink) -> (Used, Flow) {
    let (meta, messages) = match value {
        Value::Array(messages) => (Map::new(), messages),
        Value::Object(mut object) => {
            let mut messages = Vec::new();
            // A Responses object: what was sent, then what came back.
            for key in ["messages", "input", "output"] {
                match object.remove(key) {
                    Some(Value::Array(items)) => messages.extend(items),
                    Some(Value::String(text)) if key == "input" => {
                        messages.push(serde_json::json!({"role": "user", "content": text}));
                    }
                    Some(Value::Null) | None => {}
                    Some(_) => return (Used::Malformed, Flow::Continue(())),
                }
            }
            (object, messages)
        }
        _ => return (Used::Malformed, Flow::Continue(())),
    };
    // A conversation of no messages is not a session: counting it would inflate the sessions
    // reviewed, and the rates every lesson is judged by.
    if messages.is_empty() {
        return (Used::Ignored, Flow::Continue(()));
    }
    let meta = Value::Object(meta);
    if sink.start(header(&meta)).is_break() {
        return (Used::Read, Flow::Break(()));
    }
    let mut items = Items::default();
    let mut emit = |record: OwnedRecord| sink.record(&record);
    for message in &messages {
        items.convert(message, &mut emit);
    }
    if let Some(outcome) = outcome(&meta) {
        emit(outcome);
    }
    (Used::Read, sink.end())
}

/// What a conversation's metadata says about its session (in the object itself or in its
/// `metadata`).
fn header(meta: &Value) -> SessionHeader {
    let nested = meta.get("metadata").unwrap_or(&Value::Null);
    let find = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| str_field(meta, key).or_else(|| str_field(nested, key)))
            .map(str::to_string)
    };
    let started = ["started", "created_at", "created", "timestamp"]
        .iter()
        .find_map(|key| meta.get(*key).or_else(|| nested.get(*key)).and_then(content::timestamp));
    let mut labels = content::labels(Some(nested));
    labels.extend(content::labels(meta.get("labels")));
    SessionHeader {
        id: find(&["id", "session_id", "conversation_id"]),
        agent: find(&["agent", "agent_name"]),
        started,
        labels,
    }
}

/// The outcome a conversation records: `outcome` (an object with `success` / `score`, or a
/// boolean), or a `reward` (a score when within 0..1, else success when positive).
fn outcome(meta: &Value) -> Option<OwnedRecord> {
    let nested = meta.get("metadata").unwrap_or(&Value::Null);
    let get = |key: &str| meta.get(key).or_else(|| nested.get(key)).filter(|v| !v.is_null());
    let (success, score) = match (get("outcome"), get("reward")) {
        (Some(Value::Bool(success)), _) => (Some(*success), None),
        (Some(outcome @ Value::Object(_)), _) => (
            outcome.get("success").and_then(Value::as_bool),
            outcome.get("score").and_then(Value::as_f64).filter(|s| s.is_finite()),
        ),
        (_, Some(reward)) => match reward.as_f64().filter(|r| r.is_finite()) {
            Some(r) if (0.0..=1.0).contains(&r) => (None, Some(r)),
            Some(r) => (Some(r > 0.0), None),
            None => return None,
        },
        _ => return None,
    };
    (success.is_some() || score.is_some()).then_some(OwnedRecord::Outcome {
        success,
        score,
        ts: None,
    })
}

/// Converts messages and items into records, remembering which call id named which tool so
/// that a result (which carries only the id) is counted against its tool. Shared with Codex,
/// whose `response_item` lines are Responses items.
#[derive(Default)]
pub struct Items {
    calls: Calls,
}

impl Items {
    /// Converts one Chat message or Responses item.
    pub fn convert(&mut self, item: &Value, emit: &mut dyn FnMut(OwnedRecord)) -> Used {
        let ts = ["timestamp", "created_at", "ts"]
            .iter()
            .find_map(|key| item.get(*key).and_then(content::timestamp));
        match item.get("type").and_then(Value::as_str) {
            Some("function_call" | "custom_tool_call") => self.call(item, "call_id", ts, emit),
            Some("function_call_output" | "custom_tool_call_output") => self.output(item, ts, emit),
            Some("local_shell_call") => {
                let input = item.get("action").cloned().unwrap_or(Value::Null);
                self.named_call("shell", str_field(item, "call_id"), &input, ts, emit)
            }
            Some("reasoning") => Used::Ignored,
            Some("message") | None => self.message(item, ts, emit),
            Some(_) => Used::Ignored,
        }
    }

    fn message(&mut self, message: &Value, ts: Option<jiff::Timestamp>, emit: &mut dyn FnMut(OwnedRecord)) -> Used {
        let Some(role) = message.get("role").and_then(Value::as_str) else {
            return Used::Malformed;
        };
        let text = content::text(message.get("content").unwrap_or(&Value::Null));
        let role = match role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" | "developer" => Role::System,
            "tool" | "function" => {
                let mut name = self.calls.name_of(str_field(message, "tool_call_id"));
                if name == UNKNOWN_TOOL
                    && let Some(named) = str_field(message, "name")
                {
                    name = named.to_string();
                }
                emit(tool_result(name, &text, ts));
                return Used::Read;
            }
            _ => return Used::Ignored,
        };
        if !text.trim().is_empty() {
            emit(OwnedRecord::Message { role, text, ts });
        }
        if role == Role::Assistant {
            if let Some(Value::Array(calls)) = message.get("tool_calls") {
                for call in calls {
                    let function = call.get("function").unwrap_or(call);
                    self.call_of(function, str_field(call, "id"), ts, emit);
                }
            }
            // The pre-tools `function_call` field of Chat Completions.
            if let Some(function) = message.get("function_call").filter(|f| f.is_object()) {
                self.call_of(function, None, ts, emit);
            }
        }
        Used::Read
    }

    fn call_of(
        &mut self,
        function: &Value,
        id: Option<&str>,
        ts: Option<jiff::Timestamp>,
        emit: &mut dyn FnMut(OwnedRecord),
    ) {
        if let Some(name) = str_field(function, "name") {
            let input = function.get("arguments").cloned().unwrap_or(Value::Null);
            self.named_call(name, id, &input, ts, emit);
        }
    }

    fn call(
        &mut self,
        item: &Value,
        id_key: &str,
        ts: Option<jiff::Timestamp>,
        emit: &mut dyn FnMut(OwnedRecord),
    ) -> Used {
        let Some(name) = str_field(item, "name") else {
            return Used::Malformed;
        };
        let input = item
            .get("arguments")
            .or_else(|| item.get("input"))
            .unwrap_or(&Value::Null);
        self.named_call(name, str_field(item, id_key), input, ts, emit)
    }

    fn named_call(
        &mut self,
        name: &str,
        id: Option<&str>,
        input: &Value,
        ts: Option<jiff::Timestamp>,
        emit: &mut dyn FnMut(OwnedRecord),
    ) -> Used {
        self.calls.remember(id, name);
        emit(OwnedRecord::ToolCall {
            name: name.to_string(),
            values: content::values(input),
            ts,
        });
        Used::Read
    }

    fn output(&mut self, item: &Value, ts: Option<jiff::Timestamp>, emit: &mut dyn FnMut(OwnedRecord)) -> Used {
        let name = self.calls.name_of(str_field(item, "call_id"));
        let output = match item.get("output") {
            Some(Value::String(output)) => output.clone(),
            Some(output @ Value::Array(_)) => content::text(output),
            Some(Value::Object(output)) => output
                .get("output")
                .or_else(|| output.get("content"))
                .map(content::text)
                .unwrap_or_default(),
            _ => String::new(),
        };
        emit(tool_result(name, &output, ts));
        Used::Read
    }
}

/// A tool result whose failure is read from its output (these formats have no error flag).
pub fn tool_result(name: String, output: &str, ts: Option<jiff::Timestamp>) -> OwnedRecord {
    let error = content::failure(output);
    OwnedRecord::ToolResult {
        name,
        ok: error.is_none(),
        error,
        ts,
    }
}
