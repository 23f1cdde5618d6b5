//! The same sessions written as reverie JSONL, as OpenAI conversations, as Claude Code logs and
//! as OpenTelemetry GenAI spans give the same proposal: the importers lose nothing a dream
//! uses. Each rendering carries what its format can carry (Claude Code and OTLP have no session
//! labels or outcomes; none has reviewer feedback), and the reverie JSONL it is compared with is
//! cut down to exactly that.

mod common;
use common::reverie;

use std::path::{Path, PathBuf};

use reverie_dev::formats::{self, Rendering};
use serde_json::Value;

fn example_sessions() -> Vec<Vec<Value>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sessions");
    let mut files: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the example sessions are there");
    // One example line is Latin-1 on purpose; a lossy read keeps the rest of its session.
    files
        .iter()
        .map(|f| formats::records(&String::from_utf8_lossy(&std::fs::read(f).unwrap())))
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn write_all(dir: &Path, suffix: &str, sessions: &[Vec<Value>], render: impl Fn(&[Value]) -> String) {
    std::fs::create_dir_all(dir).unwrap();
    for session in sessions {
        std::fs::write(
            dir.join(format!("{}{suffix}", formats::session_id(session))),
            render(session),
        )
        .unwrap();
    }
}

/// The proposal's changes, as a reviewer reads them: what, where, and on how many sessions.
fn proposal(dir: &Path) -> Vec<(String, String, String, u64)> {
    let output = reverie(&[
        "dream",
        "--sessions",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "--agent",
        "support-bot",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped = report["stats"]["filesSkipped"].as_array().map_or(0, Vec::len);
    assert_eq!(skipped, 0, "{dir:?}: every file is read: {report}");
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().to_string(),
                c["section"].as_str().unwrap().to_string(),
                c["text"].as_str().unwrap_or_default().to_string(),
                c["evidence"]["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn every_format_gives_the_proposal_of_the_equivalent_reverie_jsonl() {
    let sessions = example_sessions();
    let root = std::env::temp_dir().join(format!("reverie-formats-equivalence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for rendering in Rendering::ALL {
        let format = rendering.name();
        let native = root.join(format!("{format}-as-reverie"));
        let imported = root.join(format);
        write_all(&native, ".jsonl", &sessions, |s| {
            formats::reverie_jsonl(s, rendering.carries())
        });
        write_all(&imported, rendering.suffix(), &sessions, |s| rendering.render(s));
        let expected = proposal(&native);
        assert!(
            expected.iter().filter(|c| c.0 == "Add").count() >= 2,
            "{format}: the reverie JSONL proposes lessons: {expected:?}"
        );
        assert_eq!(proposal(&imported), expected, "{format} differs from its reverie JSONL");
    }
    std::fs::remove_dir_all(root).unwrap();
}
