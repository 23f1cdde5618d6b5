//! Managed-Agents-style session events, as a session events API returns them page by page
//! (`{"data": [...]}` pages, a JSON array, or JSONL with one event or one page per line).
//!
//! `user.message`, `agent.message` and `system.message` carry content blocks;
//! `agent.tool_use` / `agent.mcp_tool_use` / `agent.custom_tool_use` are tool calls and their
//! result events (`agent.tool_result`, `agent.mcp_tool_result`, `user.custom_tool_result`,
//! `user.tool_result`) the results, failed when `is_error`; a result names its call by the
//! call event's `id`. An outcome evaluation's end (`span.outcome_evaluation_end`, or a
//! `session.outcome_evaluated` event) is the session's outcome. Status changes, thinking
//! markers, usage and model-request spans carry no conversation. A file is one session, named
//! by a `session_id` if its events carry one (the list endpoint's do not), else by the file.

use serde_json::Value;

use super::content::{self, str_field};
use super::{Calls, Flow, ImportSink, Importer, Open, OwnedRecord, SessionHeader, Used};
use crate::dream::model::Role;

#[derive(Default)]
pub struct ManagedAgents {
    open: Open,
    calls: Calls,
}

impl Importer for ManagedAgents {
    fn record(&mut self, event: Value, sink: &mut dyn ImportSink) -> (Used, Flow) {
        // A page per line: its events in order.
        if let Some(Value::Array(events)) = event.get("data") {
            let mut used = Used::Ignored;
            for event in events.clone() {
                let (one, flow) = self.record(event, sink);
                if one != Used::Ignored {
                    used = one;
                }
                if flow.is_break() {
                    return (used, flow);
                }
            }
            return (used, Flow::Continue(()));
        }
        let Some(kind) = event.get("type").and_then(Value::as_str) else {
            return (Used::Malformed, Flow::Continue(()));
        };
        let ts = ["processed_at", "created_at", "timestamp"]
            .iter()
            .find_map(|key| event.get(*key).and_then(content::timestamp));
        let record = match kind {
            "user.message" | "agent.message" | "system.message" => {
                let role = match kind {
                    "user.message" => Role::User,
                    "agent.message" => Role::Assistant,
                    _ => Role::System,
                };
                let text = content::text(event.get("content").unwrap_or(&Value::Null));
                if text.trim().is_empty() {
                    return (Used::Ignored, Flow::Continue(()));
                }
                OwnedRecord::Message { role, text, ts }
            }
            "agent.tool_use" | "agent.mcp_tool_use" | "agent.custom_tool_use" => {
                let Some(name) = str_field(&event, "name").or_else(|| str_field(&event, "tool_name")) else {
                    return (Used::Malformed, Flow::Continue(()));
                };
                self.calls.remember(str_field(&event, "id"), name);
                OwnedRecord::ToolCall {
                    name: name.to_string(),
                    values: content::values(event.get("input").unwrap_or(&Value::Null)),
                    ts,
                }
            }
            "agent.tool_result" | "agent.mcp_tool_result" | "user.custom_tool_result" | "user.tool_result" => {
                let id = ["tool_use_id", "mcp_tool_use_id", "custom_tool_use_id"]
                    .iter()
                    .find_map(|key| str_field(&event, key));
                let name = self.calls.name_of(id);
                let failed = event.get("is_error") == Some(&Value::Bool(true));
                let text = content::text(event.get("content").unwrap_or(&Value::Null));
                OwnedRecord::ToolResult {
                    name,
                    ok: !failed,
                    error: failed.then(|| {
                        if text.trim().is_empty() {
                            "tool error".to_string()
                        } else {
                            text
                        }
                    }),
                    ts,
                }
            }
            "span.outcome_evaluation_end" | "session.outcome_evaluated" => match outcome(&event, ts) {
                Some(record) => record,
                None => return (Used::Malformed, Flow::Continue(())),
            },
            _ => return (Used::Ignored, Flow::Continue(())),
        };
        if self.open.start(|| header(&event, ts), sink).is_break() {
            return (Used::Read, Flow::Break(()));
        }
        self.open.record(&record, sink);
        (Used::Read, Flow::Continue(()))
    }

    fn finish(&mut self, sink: &mut dyn ImportSink) {
        let _ = self.open.end(sink);
    }
}

/// The outcome of an evaluation: its `result` / `outcome` (`satisfied`, `success`, `passed`
/// are successes; `failed`, `needs_revision`, `max_iterations_reached` are not; `interrupted`
/// says nothing) and its `score`, looked up on the event and in its `outcome` / `evaluation`
/// object.
fn outcome(event: &Value, ts: Option<jiff::Timestamp>) -> Option<OwnedRecord> {
    let places = [Some(event), event.get("outcome"), event.get("evaluation")];
    let places = places.iter().flatten().copied();
    let mut success = None;
    let mut score = None;
    for place in places {
        for key in ["result", "outcome", "status", "verdict"] {
            success = success.or(match place.get(key) {
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                    "satisfied" | "success" | "succeeded" | "passed" | "pass" | "resolved" => Some(true),
                    "not_satisfied"
                    | "unsatisfied"
                    | "failed"
                    | "failure"
                    | "fail"
                    | "unresolved"
                    | "needs_revision"
                    | "max_iterations_reached" => Some(false),
                    _ => None,
                },
                _ => None,
            });
        }
        score = score.or(place
            .get("score")
            .and_then(Value::as_f64)
            .filter(|s| (0.0..=1.0).contains(s)));
    }
    (success.is_some() || score.is_some()).then_some(OwnedRecord::Outcome { success, score, ts })
}

fn header(event: &Value, ts: Option<jiff::Timestamp>) -> SessionHeader {
    SessionHeader {
        id: str_field(event, "session_id").map(str::to_string),
        agent: str_field(event, "agent_name").map(str::to_string),
        started: ts,
        labels: Default::default(),
    }
}
