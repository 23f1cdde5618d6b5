//! The assembler on batches shaped as SDKs export them: children before parents, sessions
//! split across requests, foreign spans mixed in, and more than the budget allows.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::dream::model::{DreamSettings, ReadStats, Record, SessionMeta, SessionVisitor};
use crate::dream::sessions::{FormatChoice, discover, stream};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_764_000_000 + second).unwrap()
}

fn attribute(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A span of `trace` with GenAI attributes (`None` operation: an ordinary HTTP span).
fn span(trace: &str, id: &str, operation: Option<&str>, extra: &[(&str, &str)], error: Option<&str>) -> Value {
    let mut attributes: Vec<Value> = operation
        .map(|op| attribute("gen_ai.operation.name", op))
        .into_iter()
        .collect();
    attributes.extend(extra.iter().map(|(k, v)| attribute(k, v)));
    json!({
        "traceId": trace, "spanId": id, "name": operation.unwrap_or("GET /"),
        "startTimeUnixNano": "1764000000000000000", "endTimeUnixNano": "1764000001000000000",
        "attributes": attributes,
        "status": error.map_or(json!({}), |message| json!({"code": 2, "message": message})),
    })
}

fn tool(trace: &str, id: &str, name: &str, error: Option<&str>) -> Value {
    span(trace, id, Some("execute_tool"), &[("gen_ai.tool.name", name)], error)
}

fn request(service: &str, spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "sdk"}, "spans": spans}],
    }]})
}

fn known(name: &str) -> bool {
    name == "support"
}

fn assembler() -> Assembler {
    Assembler::new(Limits::default())
}

/// The records the `otlp` importer reads back from written sessions.
#[derive(Default)]
struct Read {
    sessions: Vec<(String, Vec<String>)>,
}

impl SessionVisitor for Read {
    fn start_session(&mut self, session: &SessionMeta) {
        self.sessions.push((session.id.clone(), Vec::new()));
    }

    fn record(&mut self, record: Record<'_>) {
        let line = match record {
            Record::ToolResult { name, ok: false, .. } => format!("failed {name}"),
            Record::ToolResult { name, .. } => format!("ok {name}"),
            Record::Message { text, .. } => format!("say {text}"),
            _ => return,
        };
        self.sessions.last_mut().unwrap().1.push(line);
    }

    fn end_session(&mut self) {}
}

fn read_back(sessions: &[Complete]) -> (Read, ReadStats) {
    let dir = tempfile::tempdir().unwrap();
    for (n, session) in sessions.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{n}.otlp.jsonl")), &session.line).unwrap();
    }
    let mut settings = DreamSettings::defaults(at(10_000));
    settings.format = FormatChoice::Auto;
    let selection = discover(dir.path(), &settings).unwrap();
    let mut read = Read::default();
    let mut stats = selection.stats.clone();
    stream(&selection.sessions, &mut read, &mut stats);
    (read, stats)
}

#[test]
fn children_exported_before_their_parent_join_its_conversation() {
    let mut assembler = assembler();
    // The tool spans end first and arrive in a batch of their own, without the conversation id.
    let first = request(
        "support",
        vec![
            tool("t1", "a2", "lookup_order", Some("Error: order service timeout")),
            tool("t1", "a3", "lookup_order", None),
        ],
    );
    let offer = assembler.offer(&first, &known, at(0)).unwrap();
    assert_eq!(offer.accepted, 2);
    assert_eq!(assembler.pending_sessions(), 1);

    let parent = span(
        "t1",
        "a1",
        Some("invoke_agent"),
        &[("gen_ai.conversation.id", "conv-9")],
        None,
    );
    let second_trace = tool("t2", "b1", "refund", None);
    let second = request(
        "support",
        vec![
            parent,
            span(
                "t2",
                "b0",
                Some("invoke_agent"),
                &[("gen_ai.conversation.id", "conv-9")],
                None,
            ),
            second_trace,
        ],
    );
    assembler.offer(&second, &known, at(1)).unwrap();
    assert_eq!(assembler.pending_sessions(), 1, "both traces are one conversation");

    let sessions = assembler.take_all();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].key.session, "conv-9");
    assert_eq!(sessions[0].spans, 5);
    assert_eq!(assembler.buffered_bytes(), 0);

    let (read, stats) = read_back(&sessions);
    assert_eq!(
        stats.files_skipped,
        vec![],
        "the written line is one the importer reads"
    );
    assert_eq!(read.sessions.len(), 1);
    assert_eq!(read.sessions[0].0, "conv-9");
    assert_eq!(
        read.sessions[0].1,
        vec!["failed lookup_order", "ok lookup_order", "ok refund"],
    );
}

#[test]
fn foreign_spans_are_ignored_and_unknown_agents_rejected_with_their_name() {
    let mut assembler = assembler();
    let mut batch = request(
        "support",
        vec![span("t1", "a1", None, &[], None), tool("t1", "a2", "search", None)],
    );
    let stranger = request("billing-bot", vec![tool("t9", "z1", "charge", None)]);
    batch["resourceSpans"]
        .as_array_mut()
        .unwrap()
        .push(stranger["resourceSpans"][0].clone());
    batch["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "no trace id", "attributes": [attribute("gen_ai.operation.name", "chat")]}));

    let offer = assembler.offer(&batch, &known, at(0)).unwrap();
    assert_eq!(offer.accepted, 1);
    assert_eq!(offer.ignored, 1);
    assert_eq!(offer.rejected.get(&Rejection::UnknownAgent), Some(&1));
    assert_eq!(offer.rejected.get(&Rejection::Malformed), Some(&1));
    assert_eq!(offer.unknown_agents, vec!["billing-bot".to_string()]);
    assert_eq!(offer.rejected_total(), 2);
}

#[test]
fn gen_ai_agent_name_maps_a_span_when_the_service_name_does_not() {
    let mut assembler = assembler();
    let named = span(
        "t1",
        "a1",
        Some("execute_tool"),
        &[("gen_ai.tool.name", "search"), ("gen_ai.agent.name", "support")],
        None,
    );
    let offer = assembler
        .offer(&request("python-worker", vec![named]), &known, at(0))
        .unwrap();
    assert_eq!(offer.accepted, 1);
    assert_eq!(assembler.take_all()[0].key.agent, "support");
}

#[test]
fn a_batch_over_the_budget_is_refused_whole_and_the_oldest_sessions_make_room() {
    let mut assembler = Assembler::new(Limits {
        max_buffered_bytes: 2_000,
        max_span_bytes: 1_000,
    });
    for (n, second) in [(1, 0), (2, 1), (3, 2)] {
        let conversation = format!("conv-{n}");
        let batch = request(
            "support",
            vec![span(
                &format!("t{n}"),
                "a",
                Some("chat"),
                &[("gen_ai.conversation.id", &conversation)],
                None,
            )],
        );
        assembler.offer(&batch, &known, at(second)).unwrap();
    }
    let held = assembler.buffered_bytes();
    let big: Vec<Value> = (0..4)
        .map(|n| {
            span(
                "t9",
                &format!("b{n}"),
                Some("chat"),
                &[("gen_ai.conversation.id", "conv-9")],
                None,
            )
        })
        .collect();
    let full = assembler
        .offer(&request("support", big.clone()), &known, at(3))
        .unwrap_err();
    assert_eq!(full.buffered, held);
    assert_eq!(assembler.buffered_bytes(), held, "nothing of the refused batch is kept");
    assert_eq!(assembler.pending_sessions(), 3);

    let written = assembler.take_oldest(held / 2);
    let keys: Vec<&str> = written.iter().map(|c| c.key.session.as_str()).collect();
    assert_eq!(
        keys,
        vec!["conv-1", "conv-2"],
        "least recently active first, until under the target"
    );
    assert!(assembler.buffered_bytes() <= held / 2);
    assert!(assembler.offer(&request("support", big), &known, at(4)).is_ok());

    let huge = span(
        "t8",
        "h",
        Some("chat"),
        &[("gen_ai.input.messages", &"x".repeat(2_000))],
        None,
    );
    let offer = assembler.offer(&request("support", vec![huge]), &known, at(5)).unwrap();
    assert_eq!(offer.rejected.get(&Rejection::TooLarge), Some(&1));
}

#[test]
fn only_sessions_idle_for_the_timeout_are_complete() {
    let mut assembler = assembler();
    let conversation = |c: &str, trace: &str| {
        request(
            "support",
            vec![span(trace, "a", Some("chat"), &[("gen_ai.conversation.id", c)], None)],
        )
    };
    assembler.offer(&conversation("old", "t1"), &known, at(0)).unwrap();
    assembler.offer(&conversation("busy", "t2"), &known, at(0)).unwrap();
    assembler.offer(&conversation("busy", "t3"), &known, at(50)).unwrap();

    assert!(assembler.take_idle(at(59), Duration::from_secs(60)).is_empty());
    let due = assembler.take_idle(at(60), Duration::from_secs(60));
    assert_eq!(
        due.iter().map(|c| c.key.session.as_str()).collect::<Vec<_>>(),
        vec!["old"]
    );
    assert_eq!(
        assembler.take_idle(at(110), Duration::from_secs(60))[0].key.session,
        "busy"
    );
    assert_eq!(assembler.pending_sessions(), 0);
}

#[test]
fn hostile_shapes_never_panic_and_keep_nothing() {
    let mut assembler = assembler();
    for hostile in [
        json!(null),
        json!([]),
        json!({"resourceSpans": 7}),
        json!({"resourceSpans": [{"resource": 1, "scopeSpans": [{"spans": [1, "x", null]}]}]}),
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5, "attributes": "no"}]}]}]}),
    ] {
        let offer = assembler.offer(&hostile, &known, at(0)).unwrap();
        assert_eq!(offer.accepted, 0, "{hostile}");
    }
    assert_eq!(assembler.pending_sessions(), 0);
}
