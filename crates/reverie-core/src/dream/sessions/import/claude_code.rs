//! Claude Code sessions: `~/.claude/projects/<project>/<session>.jsonl`.
//!
//! `user` and `assistant` lines carry a Messages API `message`; its content blocks become
//! records (`text`, `tool_use`, `tool_result` with `is_error`). `summary`, `system` and
//! snapshot lines are not part of the conversation. Lines on a sidechain (a subagent's run)
//! keep their tool calls and results, but their `user` text is the parent agent's prompt, not a
//! person's, so it is not read as a user message; a file that holds only a subagent's run is a
//! session of its own, `<sessionId>/<agentId>`.

use serde_json::Value;

use super::content::{self, str_field};
use super::{Calls, Flow, ImportSink, Importer, Open, OwnedRecord, SessionHeader, Used};
use crate::dream::model::Role;

#[derive(Default)]
pub struct ClaudeCode {
    open: Open,
    /// `tool_use` ids to tool names: a `tool_result` names only the id.
    calls: Calls,
}

impl Importer for ClaudeCode {
    fn record(&mut self, line: Value, sink: &mut dyn ImportSink) -> (Used, Flow) {
        let role = match line.get("type").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(_) => return (Used::Ignored, Flow::Continue(())),
            None => return (Used::Malformed, Flow::Continue(())),
        };
        let Some(message) = line.get("message").filter(|m| m.is_object()) else {
            return (Used::Malformed, Flow::Continue(()));
        };
        if self.open.start(|| header(&line), sink).is_break() {
            return (Used::Read, Flow::Break(()));
        }
        let ts = line.get("timestamp").and_then(content::timestamp);
        // Text written by a person: not a subagent's prompt, not the CLI's own meta lines.
        let from_person = role == Role::Assistant
            || !(line.get("isSidechain") == Some(&Value::Bool(true)) || line.get("isMeta") == Some(&Value::Bool(true)));
        let mut records = Vec::new();
        match message.get("content") {
            Some(Value::String(text)) => {
                if from_person {
                    records.push(message_record(role, text.clone(), ts));
                }
            }
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    self.block(block, role, from_person, ts, &mut records);
                }
            }
            _ => return (Used::Malformed, Flow::Continue(())),
        }
        for record in &records {
            self.open.record(record, sink);
        }
        (Used::Read, Flow::Continue(()))
    }

    fn finish(&mut self, sink: &mut dyn ImportSink) {
        let _ = self.open.end(sink);
    }
}

impl ClaudeCode {
    fn block(
        &mut self,
        block: &Value,
        role: Role,
        from_person: bool,
        ts: Option<jiff::Timestamp>,
        records: &mut Vec<OwnedRecord>,
    ) {
        match block.get("type").and_then(Value::as_str) {
            Some("text") if from_person => {
                if let Some(text) = str_field(block, "text") {
                    records.push(message_record(role, text.to_string(), ts));
                }
            }
            Some("tool_use") => {
                let Some(name) = str_field(block, "name") else { return };
                self.calls.remember(str_field(block, "id"), name);
                records.push(OwnedRecord::ToolCall {
                    name: name.to_string(),
                    values: content::values(block.get("input").unwrap_or(&Value::Null)),
                    ts,
                });
            }
            Some("tool_result") => {
                let name = self.calls.name_of(str_field(block, "tool_use_id"));
                let failed = block.get("is_error") == Some(&Value::Bool(true));
                let error =
                    failed.then(|| unwrap_tool_error(content::text(block.get("content").unwrap_or(&Value::Null))));
                records.push(OwnedRecord::ToolResult {
                    name,
                    ok: !failed,
                    error: error
                        .filter(|e| !e.trim().is_empty())
                        .or(failed.then(|| "tool error".to_string())),
                    ts,
                });
            }
            // Thinking, images, documents and what later versions add.
            _ => {}
        }
    }
}

/// The message inside Claude Code's `<tool_use_error>…</tool_use_error>` wrapping.
fn unwrap_tool_error(text: String) -> String {
    let trimmed = text.trim();
    match trimmed
        .strip_prefix("<tool_use_error>")
        .and_then(|t| t.strip_suffix("</tool_use_error>"))
    {
        Some(inner) => inner.trim().to_string(),
        None => text,
    }
}

/// A user message that is the CLI's own wrapping (`<command-name>…`, `<system-reminder>…`)
/// reads as system text, so it never becomes a person's rule.
fn message_record(role: Role, text: String, ts: Option<jiff::Timestamp>) -> OwnedRecord {
    let role = if role == Role::User && content::is_harness_text(&text) {
        Role::System
    } else {
        role
    };
    OwnedRecord::Message { role, text, ts }
}

/// The session a file holds, from its first conversation line.
fn header(line: &Value) -> SessionHeader {
    let session = str_field(line, "sessionId");
    let sidechain = line.get("isSidechain") == Some(&Value::Bool(true));
    let id = match (session, sidechain, str_field(line, "agentId")) {
        (Some(session), true, Some(agent)) => Some(format!("{session}/{agent}")),
        // A sidechain file without an agent id: the file name tells it apart.
        (Some(_), true, None) => None,
        (session, _, _) => session.map(str::to_string),
    };
    let mut labels = std::collections::BTreeMap::new();
    if let Some(project) = str_field(line, "cwd").and_then(content::project) {
        labels.insert("project".to_string(), project.to_string());
    }
    if let Some(branch) = str_field(line, "gitBranch") {
        labels.insert("git-branch".to_string(), branch.to_string());
    }
    if sidechain {
        labels.insert("sidechain".to_string(), "true".to_string());
    }
    SessionHeader {
        id,
        agent: None,
        started: line.get("timestamp").and_then(content::timestamp),
        labels,
    }
}
