//! The project's own tooling is installed: Helm, built from the version scripts/helm/go.mod pins.

#[test]
fn helm_from_the_project_tooling_runs() {
    let helm = std::env::var("HELM").expect("HELM is set by e2e/run.sh (scripts/install-helm.sh)");
    let output = std::process::Command::new(&helm)
        .args(["version", "--short"])
        .output()
        .expect("helm runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The version scripts/helm/go.mod pins, as the binary reports it.
    let module = std::fs::read_to_string(reverie_e2e::repo_root().join("scripts/helm/go.mod")).unwrap();
    let pinned = module
        .lines()
        .find_map(|l| l.trim().strip_prefix("helm.sh/helm/v3 "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("scripts/helm/go.mod requires helm.sh/helm/v3");
    let reported = String::from_utf8_lossy(&output.stdout);
    assert!(
        reported.starts_with(pinned),
        "helm says {reported}, go.mod pins {pinned}"
    );
}
