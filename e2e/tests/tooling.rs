//! The project's own tooling is installed: Helm, for the chart tests and the demo.

#[test]
fn helm_from_the_project_tooling_runs() {
    let helm = std::env::var("HELM").expect("HELM is set by e2e/run.sh (scripts/install-helm.sh)");
    let output = std::process::Command::new(&helm)
        .args(["version", "--short"])
        .output()
        .expect("helm runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("v3.10.1"));
}
