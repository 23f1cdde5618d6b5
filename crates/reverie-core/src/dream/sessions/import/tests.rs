//! Each format's fixture (written from the formats' public documentation) read through
//! discovery and streaming, and arbitrary bytes through every importer.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use proptest::prelude::*;

use super::{Format, FormatChoice};
use crate::dream::model::{DreamSettings, ReadStats, Record, SessionMeta, SessionVisitor};
use crate::dream::sessions::{discover, stream};

/// Sessions as one line per record, for assertions that read like the transcript.
#[derive(Default)]
struct Transcript {
    sessions: Vec<(String, Vec<String>)>,
}

impl SessionVisitor for Transcript {
    fn start_session(&mut self, session: &SessionMeta) {
        self.sessions.push((session.id.clone(), Vec::new()));
    }

    fn record(&mut self, record: Record<'_>) {
        let line = match record {
            Record::Message { role, text, .. } => format!("{role:?}: {text}"),
            Record::ToolCall { name, values, .. } => format!("call {name} ({} values)", values.len()),
            Record::ToolResult { name, ok, error, .. } => match (ok, error) {
                (true, _) => format!("ok {name}"),
                (false, error) => format!("failed {name}: {}", error.unwrap_or_default()),
            },
            Record::Feedback { from, text, .. } => format!("feedback {from}: {text}"),
            Record::Outcome { success, score, .. } => format!("outcome {success:?} {score:?}"),
        };
        self.sessions.last_mut().expect("a session started").1.push(line);
    }

    fn end_session(&mut self) {}
}

fn fixture(format: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/formats")
        .join(format)
}

fn settings(format: FormatChoice) -> DreamSettings {
    let mut settings = DreamSettings::defaults("2026-12-01T00:00:00Z".parse::<Timestamp>().unwrap());
    settings.format = format;
    settings
}

/// Discovers and streams everything under `dir`.
fn read(dir: &Path, format: FormatChoice) -> (Vec<SessionMeta>, Transcript, ReadStats) {
    let selection = discover(dir, &settings(format)).expect("the fixture folder exists");
    let mut transcript = Transcript::default();
    let mut stats = selection.stats.clone();
    stream(&selection.sessions, &mut transcript, &mut stats);
    (selection.sessions, transcript, stats)
}

fn lines(transcript: &Transcript, id: &str) -> Vec<String> {
    transcript
        .sessions
        .iter()
        .find(|(session, _)| session == id)
        .unwrap_or_else(|| panic!("no session {id} in {:?}", transcript.sessions))
        .1
        .clone()
}

#[test]
fn openai_conversations_become_sessions_with_tool_errors_read_from_the_output() {
    let (sessions, transcript, stats) = read(&fixture("openai"), FormatChoice::Auto);
    let ids: Vec<_> = sessions.iter().map(|s| (s.id.as_str(), s.format)).collect();
    assert_eq!(
        ids,
        [
            ("resp-run-1", Format::Openai),
            ("conv-7f3a", Format::Openai),
            ("batch#1", Format::Openai)
        ],
        "ordered by start; the unnamed conversation is named by its place in the file"
    );
    let conv = sessions.iter().find(|s| s.id == "conv-7f3a").unwrap();
    assert_eq!(conv.agent.as_deref(), Some("billing-assistant"));
    assert_eq!(conv.labels.get("tier").map(String::as_str), Some("pro"));
    assert_eq!(
        lines(&transcript, "conv-7f3a"),
        [
            "System: You are the billing assistant for Acme. Refunds above 200 EUR need a supervisor.",
            "User: Hi, I was charged twice for invoice INV-20931.",
            "call lookup_invoice (1 values)",
            "failed lookup_invoice: Error: invoice INV-20931 not found in region eu-west",
            "Assistant: Let me check the other region.",
            // The invoice id; "us-east" has no digit, so it is not data a customer typed.
            "call lookup_invoice (1 values)",
            "ok lookup_invoice",
            "Assistant: I found the duplicate charge\nand issued a refund.",
            "outcome Some(true) Some(0.9)",
        ]
    );
    assert_eq!(
        lines(&transcript, "resp-run-1"),
        [
            "User: Please move my order 4471 to my new address.",
            "call update_address (2 values)",
            "failed update_address: order 4471 already shipped",
            "Assistant: Your order has already shipped; I can redirect it with the carrier.",
            "outcome None Some(0.0)",
        ]
    );
    assert_eq!(lines(&transcript, "batch#1")[1], "call get_balance (1 values)");
    // Streaming stops after the session asked for: the two bad lines after the last good one
    // are not reached, and nothing is reported as skipped.
    assert!(stats.files_skipped.is_empty(), "{:?}", stats.files_skipped);
}

#[test]
fn claude_code_keeps_tool_results_and_reads_no_rule_from_the_cli_or_a_subagent_prompt() {
    let (sessions, transcript, stats) = read(&fixture("claude-code"), FormatChoice::Auto);
    let session = &sessions[0];
    assert_eq!(session.id, "5b1c0e2a-7d7e-4c55-9a51-2f0f7c1d9e10");
    assert_eq!(session.format, Format::ClaudeCode);
    assert_eq!(session.started, "2026-11-19T08:00:00Z".parse::<Timestamp>().unwrap());
    assert_eq!(session.labels.get("project").map(String::as_str), Some("payments"));
    assert_eq!(
        session.labels.get("git-branch").map(String::as_str),
        Some("fix/webhook")
    );
    assert_eq!(
        lines(&transcript, &session.id),
        [
            "User: The webhook test fails since yesterday, can you fix it? Always run the tests with --locked.",
            "System: <command-name>/model</command-name>",
            "Assistant: I'll run the failing test first.",
            "call Bash (0 values)",
            "failed Bash: error[E0432]: unresolved import `crate::stripe::Event`",
            "call Grep (0 values)",
            "ok Grep",
            "call Edit (0 values)",
            "ok Edit",
            "Assistant: Fixed: the import moved to `stripe::events`. The test passes.",
        ]
    );
    assert_eq!(
        stats.lines_skipped, 1,
        "the assistant line whose message is not an object"
    );
}

#[test]
fn codex_reads_response_items_once_and_exit_codes_as_failures() {
    let (sessions, transcript, _) = read(&fixture("codex"), FormatChoice::Auto);
    assert_eq!(sessions[0].id, "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!(sessions[0].format, Format::Codex);
    assert_eq!(sessions[0].labels.get("git-branch").map(String::as_str), Some("main"));
    let lines = lines(&transcript, &sessions[0].id);
    assert!(lines[0].starts_with("System: <environment_context>"), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "User: Add a migration for the discount column and run it.",
            "call shell (0 values)",
            "failed shell: error: while executing migrations: relation \"orders\" does not exist\n",
            "call shell (0 values)",
            "ok shell",
            "Assistant: The migration ran after pointing DATABASE_URL at the shop database.",
        ]
    );
}

#[test]
fn otlp_spans_group_by_conversation_then_trace_and_tool_spans_carry_the_errors() {
    let (sessions, transcript, _) = read(&fixture("otlp"), FormatChoice::Auto);
    let ids: Vec<_> = sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["0af7651916cd43dd8448eb211c80319c", "conv-router-1"]);
    assert_eq!(sessions[1].agent.as_deref(), Some("router-support"));
    assert_eq!(
        sessions[0].agent.as_deref(),
        Some("support-agent"),
        "service.name when no agent name"
    );
    // The resource attribute the runtime sets names the memory revision the agent ran with.
    let revisions: Vec<_> = sessions.iter().map(|s| s.memory_revision).collect();
    assert_eq!(revisions, [None, Some(7)]);
    assert_eq!(
        lines(&transcript, "conv-router-1"),
        [
            "User: My router 4G-77 keeps rebooting.",
            "call get_device (1 values)",
            "failed get_device: device 4G-77 unreachable: use the serial on the label",
            "call push_firmware (1 values)",
            "ok push_firmware",
            "Assistant: I pushed a firmware update; it should stop rebooting.",
        ],
        "the history resent by the second inference span is not repeated"
    );
    assert_eq!(
        lines(&transcript, "0af7651916cd43dd8448eb211c80319c"),
        [
            "User: Cancel my subscription please.",
            "Assistant: Your subscription is cancelled.",
            "call cancel_subscription (1 values)",
            "ok cancel_subscription",
        ]
    );
}

#[test]
fn managed_agents_events_name_results_by_their_call_event_and_end_with_the_outcome() {
    let (sessions, transcript, stats) = read(&fixture("managed-agents"), FormatChoice::Auto);
    assert_eq!(sessions[0].id, "sesn_011CVz8q");
    assert_eq!(sessions[0].format, Format::ManagedAgents);
    assert_eq!(
        lines(&transcript, "sesn_011CVz8q"),
        [
            "User: Our nightly export to the warehouse failed again. Please rerun it for 2026-11-19.",
            "call bash (1 values)",
            "failed bash: permission denied: credentials for warehouse-eu expired",
            "call rotate_credentials (0 values)",
            "ok rotate_credentials",
            "call bash (1 values)",
            "ok bash",
            "Assistant: The export ran after rotating the warehouse credentials.",
            "outcome Some(true) None",
        ]
    );
    assert!(stats.lines_skipped >= 1, "the event whose type is not a string");
}

#[test]
fn a_chosen_format_reads_only_that_format_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["codex", "claude-code"] {
        for entry in std::fs::read_dir(fixture(format)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let (sessions, _, _) = read(dir.path(), FormatChoice::Auto);
    assert_eq!(sessions.len(), 2);
    let (sessions, _, stats) = read(dir.path(), FormatChoice::Only(Format::Codex));
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].format, Format::Codex);
    assert_eq!(stats.files_skipped.len(), 1, "{:?}", stats.files_skipped);
    let (sessions, _, stats) = read(dir.path(), FormatChoice::Only(Format::Reverie));
    assert!(sessions.is_empty());
    assert_eq!(stats.files_skipped.len(), 2);
}

#[test]
fn format_names_parse_and_an_unknown_one_says_what_is_accepted() {
    assert_eq!("auto".parse::<FormatChoice>(), Ok(FormatChoice::Auto));
    for format in Format::ALL {
        assert_eq!(format.name().parse::<FormatChoice>(), Ok(FormatChoice::Only(format)));
    }
    let error = "jsonl".parse::<FormatChoice>().unwrap_err();
    assert!(error.contains("claude-code") && error.contains("auto"), "{error}");
}

#[test]
fn a_conversation_without_messages_is_not_a_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("empty.json"),
        r#"{"id": "c-0", "messages": [], "outcome": true}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("one.json"),
        r#"{"id": "c-1", "messages": [{"role": "user", "content": "hello"}]}"#,
    )
    .unwrap();
    let (sessions, _, stats) = read(dir.path(), FormatChoice::Auto);
    let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["c-1"]);
    assert_eq!(
        stats.files_skipped.len(),
        1,
        "the empty one is reported: {:?}",
        stats.files_skipped
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No bytes make an importer panic, whether the file is read as JSONL or as a document.
    #[test]
    fn arbitrary_bytes_never_panic_an_importer(bytes in proptest::collection::vec(any::<u8>(), 0..512), json_like in "[\\[\\]{}\":,a-z0-9 \n.-]{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("raw.jsonl"), &bytes).unwrap();
        std::fs::write(dir.path().join("raw.json"), &bytes).unwrap();
        std::fs::write(dir.path().join("shaped.jsonl"), &json_like).unwrap();
        std::fs::write(dir.path().join("shaped.json"), &json_like).unwrap();
        for format in Format::ALL {
            let _ = read(dir.path(), FormatChoice::Only(format));
        }
        let _ = read(dir.path(), FormatChoice::Auto);
    }

    /// Records of every format's shape with arbitrary field values never panic either.
    #[test]
    fn arbitrary_values_in_known_shapes_never_panic(text in any::<String>(), number in any::<i64>(), flag in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let value = serde_json::json!(text);
        let records = [
            serde_json::json!({"type": "user", "sessionId": text, "timestamp": number, "message": {"content": [{"type": "tool_result", "tool_use_id": value, "is_error": flag, "content": [value]}]}}),
            serde_json::json!({"type": "response_item", "payload": {"type": "function_call_output", "call_id": value, "output": text}}),
            serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}, {"key": "gen_ai.input.messages", "value": {"stringValue": text}}], "startTimeUnixNano": number.to_string(), "status": {"code": number}}]}]}]}),
            serde_json::json!({"type": "agent.tool_result", "tool_use_id": value, "is_error": flag, "content": value, "processed_at": text}),
            serde_json::json!({"messages": [{"role": "tool", "content": text}, {"role": "assistant", "tool_calls": [{"function": {"name": text, "arguments": text}}]}], "reward": number}),
        ];
        for (i, record) in records.iter().enumerate() {
            std::fs::write(dir.path().join(format!("{i}.jsonl")), format!("{record}\n")).unwrap();
        }
        let _ = read(dir.path(), FormatChoice::Auto);
    }
}
