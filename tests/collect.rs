//! `reverie collect` as a running process: OTLP/HTTP requests in, session files out, and a
//! dream pass over what it wrote. The OpenTelemetry Collector and SDK in front of it are
//! exercised by the e2e suite; here the requests are built with the protocol's own types.

mod common;
use common::reverie;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use reverie::test_support::collector::{
    COLLECTOR_WAIT as WAIT, CollectorProcess, session_files, wait_for_session_files,
};
use serde_json::{Value, json};

/// A collector serving agent `support` from `support/` under a fresh root.
struct Collector {
    process: CollectorProcess,
    root: PathBuf,
}

impl Collector {
    fn start(name: &str, extra: &[&str]) -> Collector {
        let root = std::env::temp_dir().join(format!("reverie-collect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut args = vec!["--agent", "support=support"];
        args.extend(extra);
        let process = CollectorProcess::start(Path::new(env!("CARGO_BIN_EXE_reverie")), &root, &args);
        Collector { process, root }
    }

    fn sessions(&self) -> Vec<PathBuf> {
        session_files(&self.root.join("support"))
    }

    fn wait_for_sessions(&self, count: usize) -> Vec<PathBuf> {
        wait_for_session_files(&self.root.join("support"), count)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// One HTTP/1.1 request on its own connection.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers: head,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn export_protobuf(addr: SocketAddr, request: &ExportTraceServiceRequest) -> (Reply, ExportTraceServiceResponse) {
    let body = gzip(&request.encode_to_vec());
    let reply = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
        &body,
    );
    let response = if reply.status == 200 {
        ExportTraceServiceResponse::decode(reply.body.as_slice()).expect("a protobuf response")
    } else {
        ExportTraceServiceResponse::default()
    };
    (reply, response)
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

const START: u64 = 1_764_000_000_000_000_000;
const SECOND: u64 = 1_000_000_000;

fn span(trace: u8, id: u8, at: u64, attributes: Vec<KeyValue>, error: Option<&str>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: "span".into(),
        start_time_unix_nano: START + at * SECOND,
        end_time_unix_nano: START + at * SECOND + SECOND / 2,
        attributes,
        status: error.map(|message| Status {
            code: 2,
            message: message.into(),
        }),
        ..Span::default()
    }
}

/// The spans of conversation `n` of `service`: a user question, a failing order look-up, an
/// answer. The tool and chat spans end first and come without the conversation id; the
/// agent span that names it comes last, as SDKs export them.
fn conversation(n: u8, service: &str) -> (ExportTraceServiceRequest, ExportTraceServiceRequest) {
    let at = u64::from(n) * 3_600;
    let question =
        json!([{"role": "user", "parts": [{"type": "text", "content": format!("Where is my order {n}00{n}?")}]}]);
    let answer = json!([{"role": "assistant", "parts": [{"type": "text", "content": "I could not find that order; could you check the number?"}]}]);
    let children = vec![
        span(
            n,
            1,
            at,
            vec![
                text("gen_ai.operation.name", "chat"),
                text("gen_ai.input.messages", &question.to_string()),
            ],
            None,
        ),
        span(
            n,
            2,
            at + 1,
            vec![
                text("gen_ai.operation.name", "execute_tool"),
                text("gen_ai.tool.name", "lookup_order"),
                text(
                    "gen_ai.tool.call.arguments",
                    &json!({"order": format!("{n}00{n}")}).to_string(),
                ),
            ],
            Some("invalid order id: expected digits only, got a prefixed number"),
        ),
        span(
            n,
            3,
            at + 2,
            vec![
                text("gen_ai.operation.name", "chat"),
                text("gen_ai.output.messages", &answer.to_string()),
            ],
            None,
        ),
        // Plain HTTP instrumentation: not a GenAI span, nothing a dream reads.
        span(n, 4, at + 1, vec![text("http.request.method", "GET")], None),
    ];
    let parent = vec![span(
        n,
        9,
        at,
        vec![
            text("gen_ai.operation.name", "invoke_agent"),
            text("gen_ai.conversation.id", &format!("conv-{n}")),
        ],
        None,
    )];
    (request(service, children), request(service, parent))
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn dream(dir: &Path) -> Value {
    let output = reverie(&[
        "dream",
        "--sessions",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "--agent",
        "support",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn metric(collector: &Collector, name: &str) -> f64 {
    let reply = http(collector.process.admin, "GET", "/metrics", &[], b"");
    let text = String::from_utf8(reply.body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn spans_of_running_agents_become_sessions_a_dream_learns_from() {
    let collector = Collector::start("learn", &["--idle", "500ms"]);
    for n in 1..=3 {
        let (children, parent) = conversation(n, "support");
        let (reply, response) = export_protobuf(collector.process.otlp, &children);
        assert_eq!(reply.status, 200, "{}", reply.headers);
        assert_eq!(response.partial_success, None, "every span is taken or quietly ignored");
        assert_eq!(export_protobuf(collector.process.otlp, &parent).0.status, 200);
    }
    let files = collector.wait_for_sessions(3);
    assert!(
        files.iter().all(|f| f.to_string_lossy().ends_with(".otlp.jsonl")),
        "{files:?}"
    );

    let report = dream(&collector.root.join("support"));
    assert_eq!(report["stats"]["sessionsReviewed"], 3, "{report}");
    let ids: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"]["sessions"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    assert!(ids.contains(&"conv-1"), "sessions are named by conversation: {report}");
    let lesson = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"].as_str().unwrap_or_default().contains("lookup_order"))
        .unwrap_or_else(|| panic!("a lesson from the recurring tool error: {report}"));
    assert_eq!(lesson["evidence"]["count"], 3);

    assert_eq!(metric(&collector, "reverie_collect_sessions_written_total"), 3.0);
    assert_eq!(metric(&collector, "reverie_collect_spans_accepted_total"), 12.0);
    assert_eq!(metric(&collector, "reverie_collect_spans_ignored_total"), 3.0);
}

#[test]
fn refusals_are_answered_as_the_otlp_specification_says() {
    let collector = Collector::start(
        "refusals",
        &["--idle", "1h", "--max-buffer-bytes", "2500", "--retry-after", "7s"],
    );

    // A service that is no Agent of ours: a partial success that names it.
    let (stranger, _) = conversation(1, "billing-bot");
    let (reply, response) = export_protobuf(collector.process.otlp, &stranger);
    assert_eq!(reply.status, 200);
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(
        partial.rejected_spans, 3,
        "the three GenAI spans; the HTTP span is not ours to refuse"
    );
    assert!(
        partial.error_message.contains("billing-bot"),
        "{}",
        partial.error_message
    );

    let json_reply = |body: &[u8], content_type: &str| {
        http(
            collector.process.otlp,
            "POST",
            "/v1/traces",
            &[("Content-Type", content_type)],
            body,
        )
    };
    assert_eq!(json_reply(b"{}", "text/plain").status, 415);
    let broken = json_reply(b"{\"resourceSpans\": [", "application/json");
    assert_eq!(broken.status, 400);
    let status: Value = serde_json::from_slice(&broken.body).unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("ExportTraceServiceRequest"),
        "{status}"
    );
    let empty = json_reply(b"{}", "application/json");
    assert_eq!((empty.status, empty.body.as_slice()), (200, b"{}".as_slice()));

    // More than the budget: the sender is told to come back, and room is made by writing the
    // oldest session early.
    let (first, _) = conversation(1, "support");
    assert_eq!(export_protobuf(collector.process.otlp, &first).0.status, 200);
    let (second, _) = conversation(2, "support");
    let (busy, _) = export_protobuf(collector.process.otlp, &second);
    assert_eq!(busy.status, 503, "{}", busy.headers);
    assert!(
        busy.headers.to_ascii_lowercase().contains("retry-after: 7"),
        "{}",
        busy.headers
    );
    collector.wait_for_sessions(1);
    let deadline = Instant::now() + WAIT;
    while export_protobuf(collector.process.otlp, &second).0.status != 200 {
        assert!(Instant::now() < deadline, "the retry was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(
            &collector,
            "reverie_collect_spans_rejected_total{reason=\"unknown-agent\"}"
        ),
        3.0
    );
}

#[test]
fn a_terminated_collector_writes_every_session_it_holds() {
    let mut collector = Collector::start("shutdown", &["--idle", "1h"]);
    let (children, parent) = conversation(4, "support");
    assert_eq!(export_protobuf(collector.process.otlp, &children).0.status, 200);
    assert_eq!(export_protobuf(collector.process.otlp, &parent).0.status, 200);
    assert!(
        collector.sessions().is_empty(),
        "an hour of idle timeout: nothing written yet"
    );
    assert!(collector.process.terminate().success());
    let files = collector.sessions();
    assert_eq!(files.len(), 1);
    let written = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        written.contains("conv-4") && written.contains("lookup_order"),
        "{written}"
    );
}
