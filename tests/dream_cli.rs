//! `reverie dream` with no cluster: the embedded default anyone can try on a laptop.

mod common;
use common::reverie;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sessions")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reverie-dream-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn the_example_sessions_give_an_evidence_backed_proposal() {
    let examples = examples();
    let report = json(&reverie(&[
        "dream",
        "--sessions",
        examples.to_str().unwrap(),
        "--output",
        "json",
        "--agent",
        "support-bot",
    ]));
    assert_eq!(report["result"], "Proposal");
    assert!(report["summary"].as_str().unwrap().starts_with("Reviewed "));
    assert!(report["stats"]["sessionsReviewed"].as_u64().unwrap() >= 20);
    let changes = report["changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    for change in changes {
        assert!(["Add", "Update", "Archive", "Merge", "Move", "Reinforce"].contains(&change["op"].as_str().unwrap()));
        assert!(!change["section"].as_str().unwrap().is_empty());
        assert!(!change["text"].as_str().unwrap().is_empty());
        let count = change["evidence"]["count"].as_u64().unwrap();
        assert!(count >= 3, "a change below minEvidence: {change}");
        assert!(!change["evidence"]["sessions"].as_array().unwrap().is_empty());
    }
}

#[test]
fn the_same_input_prints_the_same_bytes() {
    let examples = examples();
    for output in ["text", "json", "yaml"] {
        let args = ["dream", "--sessions", examples.to_str().unwrap(), "--output", output];
        let first = reverie(&args);
        let second = reverie(&args);
        assert!(first.status.success());
        assert_eq!(first.stdout, second.stdout, "{output} output differs between runs");
    }
}

#[test]
fn writing_the_memory_then_dreaming_again_reinforces_instead_of_adding() {
    let dir = temp_dir("write");
    let memory = dir.join("memory.yaml");
    let examples = examples();
    let first = json(&reverie(&[
        "dream",
        "--sessions",
        examples.to_str().unwrap(),
        "--output",
        "json",
        "--write",
        memory.to_str().unwrap(),
    ]));
    let added = first["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "Add")
        .count();
    assert!(added > 0);
    let text = std::fs::read_to_string(&memory).unwrap();
    let doc = reverie::memory::from_yaml(&text).expect("--write writes a valid memory.yaml");
    assert_eq!(doc.entry_count(), added);

    let second = json(&reverie(&[
        "dream",
        "--sessions",
        examples.to_str().unwrap(),
        "--output",
        "json",
        "--memory",
        memory.to_str().unwrap(),
    ]));
    let ops: Vec<&str> = second["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["op"].as_str().unwrap())
        .collect();
    assert!(
        !ops.contains(&"Add"),
        "the same patterns must reinforce, not be added twice: {ops:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_empty_directory_says_there_are_no_sessions() {
    let dir = temp_dir("empty");
    let report = json(&reverie(&[
        "dream",
        "--sessions",
        dir.to_str().unwrap(),
        "--output",
        "json",
    ]));
    assert_eq!(report["result"], "NoSessions");
    assert!(report["changes"].as_array().unwrap().is_empty());
    let text = reverie(&["dream", "--sessions", dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("No sessions to review"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_directory_is_one_clear_error() {
    let output = reverie(&["dream", "--sessions", "/nonexistent/reverie/sessions"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/reverie/sessions"), "{stderr}");
}

#[test]
fn a_session_stored_twice_counts_once() {
    let dir = temp_dir("duplicates");
    let session = |id: &str| {
        format!(
            "{{\"type\":\"session\",\"id\":\"{id}\",\"started\":\"2026-11-0{}T10:00:00Z\"}}\n{{\"type\":\"tool_result\",\"name\":\"lookup\",\"ok\":false,\"error\":\"account 1 not found\"}}\n",
            id.len() % 9 + 1
        )
    };
    for id in ["s-1", "s-2", "s-3"] {
        std::fs::write(dir.join(format!("{id}.jsonl")), session(id)).unwrap();
    }
    // The same session again under another name: three sessions, not four.
    std::fs::write(dir.join("copy-of-s-1.jsonl"), session("s-1")).unwrap();
    let report = json(&reverie(&[
        "dream",
        "--sessions",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "--min-evidence",
        "3",
    ]));
    assert_eq!(report["changes"][0]["evidence"]["count"], 3);
    assert!(
        report["stats"]["filesSkipped"]
            .to_string()
            .contains("duplicate of session s-1")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn claude_code_sessions_are_read_as_they_are_written_and_a_repeated_failure_is_found() {
    let dir = temp_dir("claude-code");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/reverie-core/testdata/formats/claude-code/5b1c0e2a-7d7e-4c55-9a51-2f0f7c1d9e10.jsonl");
    let transcript = std::fs::read_to_string(fixture).unwrap();
    // Three sessions of the same project, each failing the same way.
    for n in 1..=3 {
        let id = format!("5b1c0e2a-7d7e-4c55-9a51-2f0f7c1d9e1{n}");
        let day = format!("2026-11-1{n}T");
        let session = transcript
            .replace("5b1c0e2a-7d7e-4c55-9a51-2f0f7c1d9e10", &id)
            .replace("2026-11-19T", &day);
        std::fs::write(dir.join(format!("{id}.jsonl")), session).unwrap();
    }
    let report = json(&reverie(&[
        "dream",
        "--sessions",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "--min-evidence",
        "3",
    ]));
    assert_eq!(report["stats"]["sessionsReviewed"], 3, "{report}");
    assert_eq!(
        report["stats"]["linesSkipped"], 3,
        "the broken line of each file: {report}"
    );
    // The failing Bash call is found in all three sessions; a lesson about running commands is
    // then held back by the safety check, which reports it.
    let mistake = &report["stats"]["unsafeTexts"][0];
    assert!(
        mistake["text"].as_str().unwrap().starts_with("Bash fails with"),
        "{report}"
    );
    assert_eq!(mistake["sessions"], 3);

    // Read as another format, the same files are skipped and each says why.
    let output = reverie(&[
        "dream",
        "--sessions",
        dir.to_str().unwrap(),
        "--format",
        "codex",
        "--output",
        "json",
    ]);
    let report = json(&output);
    assert_eq!(report["stats"]["filesSkipped"].as_array().unwrap().len(), 3, "{report}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unknown_format_is_refused_with_the_ones_it_can_read() {
    let output = reverie(&["dream", "--sessions", ".", "--format", "yaml"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("claude-code") && stderr.contains("managed-agents"),
        "{stderr}"
    );
}
