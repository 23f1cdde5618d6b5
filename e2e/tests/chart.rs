//! The chart end to end: `scripts/demo.sh` (what `make demo` runs) installs reverie with its Helm
//! chart — the operator pod runs on the process node with the chart's ServiceAccount and RBAC —
//! creates an agent with the example transcripts, dreams, shows the review diff, approves it
//! with `kubectl dream approve` and prints the new MEMORY.md. Everything is removed afterwards.

use std::process::Command;

use reverie_e2e::repo_root;

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

#[test]
fn the_demo_installs_the_chart_and_a_dream_is_approved_and_applied() {
    let helm = std::env::var("HELM").expect("HELM is set by e2e/run.sh (scripts/install-helm.sh)");
    let namespace = "reverie-demo-e2e";
    let demo = Command::new("bash")
        .arg("scripts/demo.sh")
        .current_dir(repo_root())
        .env("DEMO_NAMESPACE", namespace)
        .output()
        .expect("bash runs");
    // The chart installs the approval policy where the server serves it (every supported one).
    let policy = run(
        "kubectl",
        &[
            "get",
            "validatingadmissionpolicy,validatingadmissionpolicybinding",
            "-o",
            "name",
        ],
    );
    // Remove what the demo installed before judging it, so a failure leaves no operator behind.
    let uninstall = run(&helm, &["uninstall", "reverie", "-n", "reverie-system", "--wait"]);
    run(
        "kubectl",
        &["delete", "namespace", namespace, "reverie-system", "--wait=true"],
    );
    let stdout = String::from_utf8_lossy(&demo.stdout);
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(demo.status.success(), "the demo failed:\n{stderr}\n{stdout}");
    let policy = String::from_utf8_lossy(&policy.stdout);
    assert!(
        policy.contains("validatingadmissionpolicy.admissionregistration.k8s.io/reverie-approval")
            && policy.contains("validatingadmissionpolicybinding.admissionregistration.k8s.io/reverie-approval"),
        "the chart installed the approval policy: {policy}"
    );
    assert!(
        stdout.contains("approving as ") || stderr.contains("approving as "),
        "{stderr}"
    );
    assert!(stderr.contains("Installing reverie with its Helm chart"), "{stderr}");
    assert!(stdout.contains("approved by"), "kubectl dream approve ran:\n{stdout}");
    assert!(
        stdout.contains("# Memory of support-bot") && stdout.contains("## Lessons"),
        "{stdout}"
    );
    assert!(
        stdout.contains("seen in"),
        "the new memory carries evidence counts:\n{stdout}"
    );
    // The later sessions ran with the approved memory: the next dream measured its lessons.
    assert!(
        stdout.contains("Measured by the dream pass of proposal")
            && stdout.contains("cut its mistake from 19% to 0% of sessions (32 before, 12 after"),
        "the demo shows the effect of the approved lessons:\n{stdout}"
    );
    // It ends with the command that opens the review pages.
    assert!(
        stdout.contains(&format!("kubectl dream dashboard -n {namespace}")),
        "the demo prints the dashboard command:\n{stdout}"
    );
    assert!(
        uninstall.status.success(),
        "{}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
}
