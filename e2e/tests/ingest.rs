//! Sessions from a running agent, with nothing of reverie inside it: a Python agent using the
//! OpenAI client with the official GenAI instrumentation (from PyPI) exports its spans through
//! a real OpenTelemetry Collector (built from its Go modules) into `reverie collect`, which
//! finds the Agent in the API server and writes its sessions; a dream pass run by the operator
//! then proposes the lesson of the tool error every conversation hit.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reverie::api::agent::{CollectorSpec, TranscriptFormat};
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie::test_support::collector::{CollectorProcess, wait_for_session_files};
use reverie_api::test_support::{AgentBuilder, DreamScheduleBuilder};
use reverie_e2e::{OperatorProcess, TestNamespace, apply, client, has_condition, install_crds, reverie_bin, wait_for};

const CONVERSATIONS: usize = 3;

/// A path a script of ours installed, named by an environment variable `e2e/run.sh` sets.
fn peer(variable: &str, script: &str) -> PathBuf {
    let path = std::env::var(variable)
        .unwrap_or_else(|_| panic!("{variable} is set by e2e/run.sh (bash e2e/peers/{script} prints it)"));
    PathBuf::from(path)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The OpenTelemetry Collector: OTLP/HTTP in on `port`, batched, OTLP/HTTP out to `collect`.
struct OtelCollector {
    child: Child,
    port: u16,
}

impl OtelCollector {
    fn start(dir: &Path, collect: std::net::SocketAddr) -> OtelCollector {
        let port = free_port();
        let config = dir.join("otelcol.yaml");
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
                 processors:\n  batch:\n    timeout: 200ms\n\
                 exporters:\n  otlphttp:\n    endpoint: http://{collect}\n\
                 service:\n  telemetry:\n    metrics:\n      level: none\n\
                 \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlphttp]\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("otelcol.log")).unwrap();
        let child = Command::new(peer("OTELCOL_BIN", "install-otelcol.sh"))
            .arg("--config")
            .arg(format!("file:{}", config.display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the OpenTelemetry Collector starts");
        let mut collector = OtelCollector { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = collector.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the OpenTelemetry Collector did not listen (exit: {exited:?}): {}",
                std::fs::read_to_string(dir.join("otelcol.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        collector
    }
}

impl Drop for OtelCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the instrumented agent script for `CONVERSATIONS` conversations against `endpoint`.
fn run_agent(endpoint: &str, service: &str) {
    let script = reverie_e2e::repo_root().join("e2e/peers/agent.py");
    let output = Command::new(peer("AGENT_PYTHON", "install-python-agent.sh"))
        .arg(script)
        .arg(CONVERSATIONS.to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        .env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
        .stdin(Stdio::null())
        .output()
        .expect("the agent script runs");
    assert!(
        output.status.success(),
        "the agent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_instrumented_agent_s_spans_reach_a_dream_through_the_opentelemetry_collector() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "ingest").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "ingest").await.unwrap();
    let work = std::env::temp_dir().join(format!("reverie-e2e-{}", ns.name));
    let sessions = work.join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();

    let agents = ns.api::<Agent>();
    let support = AgentBuilder::new("support")
        .sessions_host_path(&sessions)
        .sessions_subpath("support")
        .spec(|spec| {
            let sessions = spec.sessions.as_mut().unwrap();
            sessions.format = TranscriptFormat::Otlp;
            sessions.collector = Some(CollectorSpec::default());
        })
        .build();
    apply(&agents, &support).await.unwrap();
    // An agent that did not ask for the collector: its spans are refused.
    apply(
        &agents,
        &AgentBuilder::new("quiet").sessions_host_path(&sessions).build(),
    )
    .await
    .unwrap();
    wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True"))
        .await
        .unwrap();

    // reverie collect as the chart runs it, but on this host: it learns from the API server
    // which Agents it serves (a hostPath root: no claim to match).
    let mut collect = CollectorProcess::start(&reverie_bin(), &sessions, &["--namespace", &ns.name, "--idle", "1s"]);
    let otelcol = OtelCollector::start(&work, collect.otlp);
    let endpoint = format!("http://127.0.0.1:{}", otelcol.port);
    run_agent(&endpoint, "support");
    run_agent(&endpoint, "quiet");

    let files = tokio::task::spawn_blocking({
        let dir = sessions.join("support");
        move || wait_for_session_files(&dir, CONVERSATIONS)
    })
    .await
    .unwrap();
    assert_eq!(files.len(), CONVERSATIONS, "one file per conversation: {files:?}");
    let written: Vec<_> = std::fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(written, ["support"], "nothing is written for an Agent that did not ask");

    // The operator's dream pass reads what the collector wrote.
    let schedules = ns.api::<DreamSchedule>();
    apply(
        &schedules,
        &DreamScheduleBuilder::new("nightly").agents(&["support"]).build(),
    )
    .await
    .unwrap();
    let run = reverie_e2e::first_pass(&schedules, "nightly", "support").await.unwrap();
    assert_eq!(run.result, "Succeeded", "{run:?}");
    assert_eq!(run.sessions_reviewed, Some(CONVERSATIONS as u64), "{run:?}");
    let proposal = ns
        .api::<MemoryProposal>()
        .get(run.proposal.as_deref().expect("a proposal"))
        .await
        .unwrap();
    let lesson = proposal
        .spec
        .changes
        .iter()
        .find(|c| c.after.as_deref().unwrap_or_default().contains("lookup_order"))
        .unwrap_or_else(|| panic!("a lesson from the recurring tool error: {:?}", proposal.spec.changes));
    let evidence = lesson.evidence.as_ref().unwrap();
    assert_eq!(evidence.count, CONVERSATIONS as u32);
    assert!(
        evidence.sessions.iter().any(|s| s == "conv-1"),
        "sessions keep their conversation ids: {evidence:?}"
    );

    assert!(collect.terminate().success(), "{:?}", collect.log_lines());
    drop(otelcol);
    drop(operator);
    ns.delete().await.unwrap();
    let _ = std::fs::remove_dir_all(work);
}
