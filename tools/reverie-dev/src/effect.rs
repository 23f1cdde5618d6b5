//! A before/after corpus with known lesson effects: sessions of a support agent in which two
//! mistakes recur, then sessions run with the lessons learned from them in which one mistake is
//! gone and the other recurs as often as before. The `reverie effect` test and the e2e effect
//! test share it.

use std::path::Path;

use serde_json::{Value, json};

/// The tool whose mistake stops once the agent has the lesson.
pub const FIXED_TOOL: &str = "update_address";
/// The tool whose mistake recurs as often with the lesson as without.
pub const RECURRING_TOOL: &str = "send_email";
/// Sessions start this far apart.
const SPACING_SECONDS: i64 = 7_200;
/// The first session's start (2026-10-26).
const FIRST_START: i64 = 1_793_000_000;

/// One generated session.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub index: u32,
    /// The memory revision the agent ran with.
    pub revision: u64,
    pub fixed_mistake: bool,
    pub recurring_mistake: bool,
}

/// Writes `session` as `s-<index>.jsonl` in `dir`: an order looked up, then each mistake it
/// has, each got past by the next call, and a successful outcome.
pub fn write_session(dir: &Path, session: Session) -> std::io::Result<()> {
    let Session { index, revision, .. } = session;
    let order = 5_000 + index;
    let started =
        jiff::Timestamp::from_second(FIRST_START + i64::from(index) * SPACING_SECONDS).expect("a timestamp in range");
    let mut lines = vec![
        json!({"type": "session", "id": format!("s-{index:03}"), "agent": "support-bot",
               "started": started.to_string(), "memoryRevision": revision}),
        json!({"type": "message", "role": "user", "text": format!("Hi, I need help with order {order}")}),
        json!({"type": "tool_call", "name": "lookup_order", "input": {"order": order.to_string()}}),
        json!({"type": "tool_result", "name": "lookup_order", "ok": true}),
    ];
    if session.fixed_mistake {
        lines.extend([
            json!({"type": "tool_call", "name": FIXED_TOOL, "input": {"order": order.to_string()}}),
            json!({"type": "tool_result", "name": FIXED_TOOL, "ok": false,
                   "error": format!("address of order {order} exceeds 35 characters per line")}),
            json!({"type": "tool_call", "name": "split_address", "input": {}}),
            json!({"type": "tool_result", "name": "split_address", "ok": true}),
        ]);
    }
    if session.recurring_mistake {
        lines.extend([
            json!({"type": "tool_call", "name": RECURRING_TOOL, "input": {"template": "update"}}),
            json!({"type": "tool_result", "name": RECURRING_TOOL, "ok": false,
                   "error": "template 'update' requires the field customer_name"}),
            json!({"type": "tool_call", "name": RECURRING_TOOL, "input": {"template": "update"}}),
            json!({"type": "tool_result", "name": RECURRING_TOOL, "ok": true}),
        ]);
    }
    lines.push(json!({"type": "outcome", "success": true}));
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(dir.join(format!("s-{index:03}.jsonl")), text.join("\n") + "\n")
}

/// Sessions `from..from + count` run with memory `revision`. Each mistake recurs in 2 of every
/// 5 sessions; with `fixed`, the first one never does.
pub fn write_sessions(dir: &Path, from: u32, count: u32, revision: u64, fixed: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for index in from..from + count {
        write_session(
            dir,
            Session {
                index,
                revision,
                fixed_mistake: !fixed && index % 5 < 2,
                recurring_mistake: (2..4).contains(&(index % 5)),
            },
        )?;
    }
    Ok(())
}
