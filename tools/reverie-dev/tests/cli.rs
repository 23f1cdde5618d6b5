//! The `reverie-dev` binary: each generator writes its corpus and answer key, the planted corpus
//! meets the quality targets, and bad input is an error on stderr with a non-zero exit.

use std::process::Command;

use serde_json::Value;

fn reverie_dev(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reverie-dev"))
        .args(args)
        .output()
        .expect("reverie-dev runs")
}

#[test]
fn the_generators_write_their_corpora_and_answer_keys() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = dir.path().join("hostile");
    let output = reverie_dev(&["gen-hostile", "--out", hostile.to_str().unwrap(), "--sessions", "40"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(hostile.join(reverie_dev::hostile::TRUTH_FILE).is_file());

    let planted = dir.path().join("planted");
    let output = reverie_dev(&["gen-sessions", "--out", planted.to_str().unwrap(), "--sessions", "120"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let truth = reverie_dev::synth::GroundTruth::load(&planted).expect("ground-truth.json");
    assert!(!truth.patterns.is_empty());
}

#[test]
fn quality_against_a_missing_truth_file_fails_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("truth.json");
    let output = reverie_dev(&[
        "quality",
        "--truth",
        missing.to_str().unwrap(),
        "--scope",
        "all",
        "--sessions",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("truth.json"), "{stderr}");
}

#[test]
fn the_planted_corpus_meets_the_quality_targets() {
    let output = reverie_dev(&["quality", "--corpus", "300", "--seed", "11"]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("quality report on stdout");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert!(report["recall"].as_f64().unwrap() >= 0.95);
    assert_eq!(report["belowThresholdLessons"], 0);
    assert_eq!(report["injectedLessons"], 0);
    assert_eq!(report["maxCountError"], 0);
}
