//! Codex CLI rollouts: `~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl`, one
//! `{timestamp, type, payload}` object per line.
//!
//! `session_meta` says which session it is; `response_item` lines are Responses API items (the
//! conversation and its tool calls, read by the OpenAI importer's item converter). `event_msg`
//! lines repeat the same messages for the terminal UI and are not read, so nothing counts twice;
//! `turn_context` and `compacted` carry no conversation.

use serde_json::Value;

use super::content::{self, str_field};
use super::openai::Items;
use super::{Flow, ImportSink, Importer, Open, OwnedRecord, SessionHeader, Used};
use crate::dream::model::Role;

#[derive(Default)]
pub struct Codex {
    open: Open,
    items: Items,
}

impl Importer for Codex {
    fn record(&mut self, line: Value, sink: &mut dyn ImportSink) -> (Used, Flow) {
        let Some(payload) = line.get("payload").filter(|p| p.is_object()) else {
            return (Used::Malformed, Flow::Continue(()));
        };
        let ts = line.get("timestamp").and_then(content::timestamp);
        match line.get("type").and_then(Value::as_str) {
            Some("session_meta") => {
                if self.open.is_started() {
                    // A resumed rollout repeats its meta: the session is the same.
                    return (Used::Ignored, Flow::Continue(()));
                }
                let flow = self.open.start(|| header(payload, ts), sink);
                (Used::Read, flow)
            }
            Some("response_item") => {
                // A rollout whose meta line was lost is still a session, named by its file.
                if self.open.start(SessionHeader::default, sink).is_break() {
                    return (Used::Read, Flow::Break(()));
                }
                let mut item = payload.clone();
                if item.get("timestamp").is_none()
                    && let (Some(object), Some(ts)) = (item.as_object_mut(), ts)
                {
                    object.insert("timestamp".into(), Value::String(ts.to_string()));
                }
                let open = &mut self.open;
                let mut emit = |record: OwnedRecord| open.record(&system_wrapping(record), sink);
                (self.items.convert(&item, &mut emit), Flow::Continue(()))
            }
            Some(_) => (Used::Ignored, Flow::Continue(())),
            None => (Used::Malformed, Flow::Continue(())),
        }
    }

    fn finish(&mut self, sink: &mut dyn ImportSink) {
        let _ = self.open.end(sink);
    }
}

/// Codex sends its environment and the repository's AGENTS.md as user messages in every
/// session (`<environment_context>…`, `<user_instructions>…`): they are the harness's, not a
/// person's.
fn system_wrapping(record: OwnedRecord) -> OwnedRecord {
    match record {
        OwnedRecord::Message {
            role: Role::User,
            text,
            ts,
        } if content::is_harness_text(&text) || text.trim_start().starts_with("# AGENTS.md instructions") => {
            OwnedRecord::Message {
                role: Role::System,
                text,
                ts,
            }
        }
        other => other,
    }
}

fn header(meta: &Value, line_ts: Option<jiff::Timestamp>) -> SessionHeader {
    let mut labels = std::collections::BTreeMap::new();
    if let Some(originator) = str_field(meta, "originator") {
        labels.insert("originator".to_string(), originator.to_string());
    }
    if let Some(branch) = meta.get("git").and_then(|git| str_field(git, "branch")) {
        labels.insert("git-branch".to_string(), branch.to_string());
    }
    if let Some(project) = str_field(meta, "cwd").and_then(content::project) {
        labels.insert("project".to_string(), project.to_string());
    }
    SessionHeader {
        id: str_field(meta, "id").map(str::to_string),
        agent: None,
        started: meta.get("timestamp").and_then(content::timestamp).or(line_ts),
        labels,
    }
}
